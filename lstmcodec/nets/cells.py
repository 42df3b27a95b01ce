"""Convolutional recurrent cells with fused gate convolutions.

Each cell computes all its gates with one convolution of the input and one of
the hidden state (instead of one per gate), which is what makes them fast.
A state of ``None`` means "first step": the hidden-state convolution is skipped
because the hidden state is zero.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

State = tuple[torch.Tensor, ...]


class _FusedGateCell(nn.Module):
    """One convolution of the input and one of the hidden state compute all `gates` gates at once."""

    gates = 0

    def __init__(self, in_ch: int, hidden: int, kernel: int = 3, stride: int = 1, hidden_kernel: int = 1):
        super().__init__()
        self.hidden = hidden
        self.conv_x = nn.Conv2d(in_ch, self.gates * hidden, kernel, stride, padding=kernel // 2)
        self.conv_h = nn.Conv2d(hidden, self.gates * hidden, hidden_kernel, 1, padding=hidden_kernel // 2, bias=False)


class ConvLSTMCell(_FusedGateCell):
    """Convolutional LSTM: i, f, g, o gates from conv(x) + conv(h).

    Where both convolutions have the same kernel and stride 1 they are computed as one convolution
    of [x, h] with the two weights side by side: the same sum, in one pass (one larger matrix product
    instead of two smaller ones and an addition; 1.3-2x faster for the decoder's full-resolution cells).
    Where the hidden kernel is 1x1 and the tensors are channels-last, conv(h) is a matrix product over
    channels that is accumulated in place into conv(x) (no separate addition pass)."""

    gates = 4
    # Inference with bf16 gates: keep c_t in fp32 (h_t stays bf16). c_t = σ(f)·c_{t-1} + σ(i)·tanh(g) sums over
    # every iteration, so a bf16 c_t piles up one rounding per iteration; in fp32 it halves the Kodak BD-rate cost
    # of bf16 (docs/experiments.md) for about 4 % more time on 2 threads. Set by RecurrentCodec.set_precision.
    fp32_state = False

    def _weights(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """conv_x's weight and bias and conv_h's weight; in inference in `dtype` (the input's: fp32 or bf16, the
        parameters themselves staying as they are) and with the rows of the g gate doubled, so that
        one sigmoid over all the gates gives σ(i), σ(f), σ(2g), σ(o), and tanh(g) = 2σ(2g) − 1. Doubling is exact
        in binary floating point: the same numbers as sigmoid(2·g) of the plain weights, in one pass over the
        gates instead of four over channel slices (which are strided in channels-last memory). Cached until the
        weights change (their version, dtype or device)."""
        cx, ch = self.conv_x, self.conv_h
        if torch.is_grad_enabled():
            return cx.weight, cx.bias, ch.weight
        key = (dtype,) + tuple((t.data_ptr(), t._version, t.device) for t in (cx.weight, cx.bias, ch.weight))
        if getattr(self, "_doubled_key", None) != key:
            g = slice(2 * self.hidden, 3 * self.hidden)
            wx, bx, wh = (t.detach().clone() for t in (cx.weight, cx.bias, ch.weight))
            for t in (wx, bx, wh):
                t[g] *= 2
            self._doubled = tuple(t.to(dtype).contiguous(memory_format=torch.channels_last) if t.dim() == 4
                                  else t.to(dtype) for t in (wx, bx, wh))
            self._doubled_key = key
        return self._doubled

    def _gates(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        cx, ch = self.conv_x, self.conv_h
        wx, bx, wh = self._weights(x.dtype)
        if h is None:
            return conv2d(x, wx, bx, cx.stride, cx.padding)
        if cx.kernel_size == ch.kernel_size and cx.stride == (1, 1):
            return conv2d(torch.cat([x, h], 1), torch.cat([wx, wh], 1), bx, (1, 1), cx.padding)
        gates = conv2d(x, wx, bx, cx.stride, cx.padding)
        if ch.kernel_size == (1, 1) and _channels_last(gates) and _channels_last(h):
            k = gates.shape[1]  # pixels x channels views of the NHWC memory: gates += h @ W_h^T
            gates.permute(0, 2, 3, 1).view(-1, k).addmm_(h.permute(0, 2, 3, 1).view(-1, self.hidden).to(gates.dtype),
                                                        wh.reshape(k, self.hidden).t().to(gates.dtype))  # bf16 autocast
            return gates
        return gates + conv2d(h, wh, None, (1, 1), ch.padding)

    def forward(self, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        if torch.is_grad_enabled():  # training: out of place, so autograd keeps what backward needs
            gates = self._gates(x, None if state is None else state[0])
            i, f, g, o = gates.chunk(4, dim=1)
            c_new = torch.sigmoid(i) * torch.tanh(g)
            if state is not None:
                c_new = c_new + torch.sigmoid(f) * state[1]
            h_new = torch.sigmoid(o) * torch.tanh(c_new)
            return h_new, (h_new, c_new)
        rows = self._strip_rows(x, state)
        if rows:
            return self._forward_in_strips(x, state, rows)
        # Inference: the same arithmetic with in-place activations, fewer passes over memory.
        gates = self._gates(x, None if state is None else state[0])
        if self.fp32_state and gates.dtype != torch.float32:
            c_new = self._update(gates, None if state is None else state[1], fp32=True)
            h_new = _tanh(c_new).mul_(gates[:, 3 * self.hidden:].float()).to(gates.dtype)
        else:
            c_new = self._update(gates, None if state is None else state[1])
            h_new = _tanh(c_new).mul_(gates[:, 3 * self.hidden:])
        return h_new, (h_new, c_new)

    def _update(self, gates: torch.Tensor, c: torch.Tensor | None, out: torch.Tensor | None = None,
                fp32: bool = False) -> torch.Tensor:
        """Inference: activate the gates (of the doubled g rows, _weights) in place and return
        c_t = σ(f)·c_{t-1} + σ(i)·tanh(g), with tanh(g) = 2σ(2g) − 1."""
        gates.sigmoid_()
        i, f, s, o = gates.chunk(4, dim=1)
        if fp32:
            i, f, s = (t.float() for t in (i, f, s))
        tanh_g = torch.mul(s, 2).sub_(1)
        c_new = torch.mul(tanh_g, i, out=out) if out is not None else tanh_g.mul_(i)
        if c is not None:
            c_new.addcmul_(f, c)
        return c_new

    def _strip_rows(self, x: torch.Tensor, state: State | None) -> int:
        """Output rows per band for `_forward_in_strips`, or 0 where the whole image is done at once:
        one channels-last image on the CPU whose gates would take more than STRIPS_ABOVE bytes."""
        if x.device.type != "cpu" or x.shape[0] != 1 or not _channels_last(x) or (state is not None and self.conv_h.kernel_size != (1, 1)):
            return 0
        h_out, w_out = _out_size(self.conv_x, x)
        row_bytes = self.gates * self.hidden * w_out * x.element_size()
        return 0 if row_bytes * h_out <= STRIPS_ABOVE else max(4, STRIP_BYTES // row_bytes)

    def _forward_in_strips(self, x: torch.Tensor, state: State | None, rows: int) -> tuple[torch.Tensor, State]:
        """Inference on a large image, a band of output rows at a time. The gates of one band (a few
        MiB) stay in cache from the convolution to the activations, and the gates of the whole image
        are never allocated: at 768x512 the decoder's last cell would need 38 MB of them per
        iteration, which glibc maps fresh from the kernel every time (over 32 MiB), and those page
        faults cost that cell a third of its time. The same numbers as the whole-image path."""
        cx = self.conv_x
        wx, bx, wh = self._weights(x.dtype)
        (kh, _), (s, _), (p, pw) = cx.kernel_size, cx.stride, cx.padding
        h_in = x.shape[2]
        h_out, w_out = _out_size(cx, x)
        fp32 = self.fp32_state and x.dtype != torch.float32
        c_new = torch.empty((1, self.hidden, h_out, w_out), dtype=torch.float32 if fp32 else x.dtype, device=x.device,
                            memory_format=torch.channels_last)
        h_new = torch.empty_like(c_new, dtype=x.dtype)
        k = self.gates * self.hidden
        for r0 in range(0, h_out, rows):
            r1 = min(h_out, r0 + rows)
            lo, hi = r0 * s - p, (r1 - 1) * s - p + kh   # the input rows this band reads, padding included
            band = x[:, :, max(lo, 0):min(hi, h_in)]
            if lo < 0 or hi > h_in:
                band = F.pad(band, (0, 0, max(-lo, 0), max(hi - h_in, 0))).contiguous(memory_format=torch.channels_last)
            gates = conv2d(band, wx, bx, cx.stride, (0, pw))
            gates = gates.contiguous(memory_format=torch.channels_last)
            if state is not None:   # gates += h @ W_h^T on this band's pixels
                gates.permute(0, 2, 3, 1).view(-1, k).addmm_(
                    state[0][:, :, r0:r1].permute(0, 2, 3, 1).reshape(-1, self.hidden), wh.reshape(k, self.hidden).t())
            c = self._update(gates, None if state is None else state[1][:, :, r0:r1], out=c_new[:, :, r0:r1],
                             fp32=fp32)
            o = gates[:, 3 * self.hidden:]
            if fp32:
                h_new[:, :, r0:r1].copy_(_tanh(c).mul_(o.float()))
            else:
                torch.mul(_tanh(c), o, out=h_new[:, :, r0:r1])
        return h_new, (h_new, c_new)


STRIPS_ABOVE = 24 << 20   # bytes of gates above which an inference step runs in bands of rows
STRIP_BYTES = 2 << 20     # bytes of gates per band


def _out_size(conv: nn.Conv2d, x: torch.Tensor) -> tuple[int, int]:
    return tuple((n + 2 * p - k) // s + 1 for n, p, k, s in zip(x.shape[2:], conv.padding, conv.kernel_size, conv.stride))


def _tanh(t: torch.Tensor) -> torch.Tensor:
    """tanh(t) as 2·sigmoid(2t) - 1 in a new tensor: equal to within float rounding, and on CPU
    2-4x faster than torch.tanh on these tensors (the switch saved about 5 % of the codec's time)."""
    return torch.sigmoid(t * 2).mul_(2).sub_(1)


class ConvGRUCell(_FusedGateCell):
    """Convolutional GRU: update z and reset r gates, candidate n = tanh(x_n + r * h_n)."""

    gates = 3

    def forward(self, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        xz, xr, xn = conv_as(self.conv_x, x).chunk(3, dim=1)
        if state is None:
            z = torch.sigmoid(xz)
            h_new = (1 - z) * torch.tanh(xn)
        else:
            (h,) = state
            hz, hr, hn = conv_as(self.conv_h, h).chunk(3, dim=1)
            z = torch.sigmoid(xz + hz)
            n = torch.tanh(xn + torch.sigmoid(xr + hr) * hn)
            h_new = (1 - z) * n + z * h
        return h_new, (h_new,)


CELLS = {"lstm": ConvLSTMCell, "gru": ConvGRUCell}


def conv2d(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, stride: tuple[int, int],
           padding: tuple[int, int]) -> torch.Tensor:
    """F.conv2d, but in CPU inference always through oneDNN: PyTorch sends small inputs (batch 1 and under 20,480
    values, as at 1/16 of a small image or tile) to an im2col + GEMM path whose sums depend on the thread count,
    where oneDNN's give the same numbers on every thread count (and are as fast or faster at these sizes)."""
    if x.device.type == "cpu" and not torch.is_grad_enabled() and torch.backends.mkldnn.is_available():
        return torch.ops.aten.mkldnn_convolution(x, w, b, list(padding), list(stride), [1, 1], 1)
    return F.conv2d(x, w, b, stride, padding)


def conv_as(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """conv(x) in x's dtype (a layer without dilation or groups): in training the layer itself; in inference by
    conv2d, with the layer's weights where they have x's dtype, else with a copy cast to it (bf16), cached on the
    layer until its weights change."""
    w, b = conv.weight, conv.bias
    if torch.is_grad_enabled():
        return conv(x)
    if w.dtype != x.dtype:
        key = (x.dtype, w.data_ptr(), w._version, w.device)
        if getattr(conv, "_cast_key", None) != key:
            conv._cast = (w.detach().to(x.dtype).contiguous(memory_format=torch.channels_last),
                          None if b is None else b.detach().to(x.dtype))
            conv._cast_key = key
        w, b = conv._cast
    return conv2d(x, w, b, conv.stride, conv.padding)


def _channels_last(t: torch.Tensor) -> bool:
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)


def depth_to_space(x: torch.Tensor) -> torch.Tensor:
    """Rearrange channels into 2x2 spatial blocks (C, H, W) -> (C/4, 2H, 2W)."""
    return F.pixel_shuffle(x, 2)

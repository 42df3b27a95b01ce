"""The recurrent codec of Toderici et al. 2017, "Full Resolution Image Compression
with Recurrent Neural Networks": encoder E, binarizer B and decoder D, run for
t = 1..T iterations on the residual of the previous one.

    b_t  = B(E_t(r_{t-1}))              32 bits per 16x16 block
    x̂_t = D_t(b_t) + γ·x̂_{t-1}         γ = 0 at t = 1, then 1 (additive)
    r_t  = x − x̂_t,     r_0 = x

With residual_gain, iteration t works on a residual scaled by a learned gain g_t (one number per
iteration, the same for every image): b_t = B(E_t(g_t·r_{t-1})), x̂_t = D_t(b_t)/g_t + x̂_{t-1}, so
that late iterations see residuals as large as early ones (after Covell et al. 2017's residual scaling).

With blocks (CodecConfig.blocks), the iterations from each listed one on are run by a network of their own
(encoder, binarizer and decoder with their own weights, the cells' states carried over from the block before):
a block can be trained on the residuals the frozen blocks before it leave, without back-propagating through them.

With a linear tail (nets/tail.py, fitted after training), the iterations after its `start` are linear stages: E_t
sends the signs of r_{t-1}'s projections on fixed directions and D_t adds those directions back; the recurrence is
the same.

The residual is signed (x − x̂_t), as in Toderici et al.; the recurrent-compression text among the project's
source documents writes it |x − x̂_t|, which would lose the sign the next iteration must correct.

Images enter as float tensors in [-0.5, 0.5], N x 3 x H x W, H and W multiples of 16.
"""
from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from lstmcodec.nets.cells import CELLS, State, conv_as, depth_to_space
from lstmcodec.geometry import BLOCK
from lstmcodec.nets.config import CodecConfig, channels
from lstmcodec.nets.tail import LinearTail

GAIN_LR_SCALE = 10.0  # the residual gains learn this many times faster than the network's weights (parameter_groups)
Gate = Callable[[int, torch.Tensor], "torch.Tensor | None"]  # see RecurrentCodec.iterate


def run_stack(rnns: nn.ModuleList, x: torch.Tensor, states: list[State] | None,
              after=None) -> tuple[torch.Tensor, list[State]]:
    """Run recurrent layers in order (state None: first iteration); `after` follows each layer."""
    new_states = []
    for i, rnn in enumerate(rnns):
        x, s = rnn(x, None if states is None else states[i])
        new_states.append(s)
        if after is not None:
            x = after(x)
    return x, new_states


class Encoder(nn.Module):
    """Stride-2 convolution, then three stride-2 recurrent layers: 16x downsampling."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        cell = CELLS[cfg.cell]
        c0 = channels(64, cfg.width)
        c1, c2, c3 = cfg.encoder_hidden or (channels(c, cfg.width) for c in (256, 512, 512))
        self.out_channels = c3
        self.conv = nn.Conv2d(3, c0, 3, stride=2, padding=1)
        self.rnns = nn.ModuleList([
            cell(c0, c1, kernel=3, stride=2, hidden_kernel=1),
            cell(c1, c2, kernel=3, stride=2, hidden_kernel=1),
            cell(c2, c3, kernel=3, stride=2, hidden_kernel=1),
        ])

    def forward(self, r: torch.Tensor, states: list[State] | None) -> tuple[torch.Tensor, list[State]]:
        return run_stack(self.rnns, conv_as(self.conv, r), states)


class Binarizer(nn.Module):
    """1x1 convolution to `bits` channels, tanh, then a binarization to exactly ±1.

    Training: stochastic (+1 with probability (1+x)/2) with a straight-through gradient, or, with
    `stochastic` set to False, inference's sign with the same straight-through gradient.
    Inference: deterministic sign with sign(0) = +1.
    """

    def __init__(self, in_ch: int, bits: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, bits, 1)
        self.stochastic = True  # a training choice, not part of the model: inference is always the sign

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.tanh(conv_as(self.conv, x))
        if self.training and self.stochastic:
            b = torch.where(torch.rand_like(y) < (1 + y) / 2, 1.0, -1.0)
        else:
            b = torch.where(y >= 0, 1.0, -1.0)
        return y + (b - y).detach() if self.training else b


class Decoder(nn.Module):
    """1x1 convolution, four recurrent layers each followed by depth-to-space x2, 1x1 convolution to RGB."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        cell = CELLS[cfg.cell]
        c0 = channels(512, cfg.width)
        c1, c2, c3, c4 = cfg.decoder_hidden or (channels(c, cfg.width) for c in (512, 512, 256, 128))
        self.conv_in = nn.Conv2d(cfg.bits, c0, 1)
        self.rnns = nn.ModuleList([
            cell(c0, c1, kernel=3, hidden_kernel=1),
            cell(c1 // 4, c2, kernel=3, hidden_kernel=1),
            cell(c2 // 4, c3, kernel=3, hidden_kernel=cfg.decoder_hidden_kernel),
            cell(c3 // 4, c4, kernel=3, hidden_kernel=cfg.decoder_hidden_kernel),
        ])
        self.conv_out = nn.Conv2d(c4 // 4, 3, 1)

    def forward(self, b: torch.Tensor, states: list[State] | None) -> tuple[torch.Tensor, list[State]]:
        x, new_states = self.features(b, states)
        if torch.is_grad_enabled():
            return self.conv_out(x.to(self.conv_out.weight.dtype)), new_states
        # Inference (the encoder's own x̂_t): `project`'s fixed order of sums, as in decoding, so that the bits an
        # encoder writes do not depend on the thread count either (oneDNN's 1x1 convolution of bf16 features
        # cast to fp32 summed in another order on one thread than on two).
        return self.project(x.float(), 1.0), new_states

    def features(self, b: torch.Tensor, states: list[State] | None) -> tuple[torch.Tensor, list[State]]:
        """What conv_out reads: the last cell's output at full resolution (depth-to-space done)."""
        h, new_states = self.hidden(b, states)
        return depth_to_space(h), new_states

    def hidden(self, b: torch.Tensor, states: list[State] | None) -> tuple[torch.Tensor, list[State]]:
        """The last cell's output at half resolution, before its depth-to-space (a permutation of its elements)."""
        x, new_states = run_stack(self.rnns[:-1], conv_as(self.conv_in, b), None if states is None else states[:-1],
                                  after=depth_to_space)
        h, last = self.rnns[-1](x, None if states is None else states[-1])
        return h, new_states + [last]

    def project(self, features: torch.Tensor, bias_scale: torch.Tensor | float) -> torch.Tensor:
        """conv_out(features) with its bias times bias_scale, computed as a fixed sequence of elementwise
        multiplications and additions (each correctly rounded, whatever the vector width or thread count),
        so that the decoded pixels do not depend on how many threads run: oneDNN's 1x1 convolution with so few
        channels may sum in another order on another thread count."""
        w = self.conv_out.weight[:, :, 0, 0]
        out = features[:, :1] * w[:, 0].view(1, -1, 1, 1)
        for c in range(1, w.shape[1]):
            out += features[:, c:c + 1] * w[:, c].view(1, -1, 1, 1)
        out += self.conv_out.bias.view(1, -1, 1, 1) * bias_scale
        return out


def keep_stopped(mask: torch.Tensor, new: torch.Tensor, old: torch.Tensor | float) -> torch.Tensor:
    """new where the block mask (N x 1 x H/16 x W/16) is 1, old where it is 0."""
    pixels = mask.repeat_interleave(BLOCK, dim=2).repeat_interleave(BLOCK, dim=3) > 0
    return torch.where(pixels, new, old)


class Block(nn.Module):
    """The encoder, binarizer and decoder of a block of later iterations (CodecConfig.blocks)."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.encoder = Encoder(cfg)
        self.binarizer = Binarizer(self.encoder.out_channels, cfg.bits)
        self.decoder = Decoder(cfg)


class RecurrentCodec(nn.Module):
    def __init__(self, cfg: CodecConfig = CodecConfig()):
        super().__init__()
        self.config = cfg
        self.compute_dtype = torch.float32   # of the encoder's and decoder's inputs (set_precision)
        self.encoder = Encoder(cfg)
        self.binarizer = Binarizer(self.encoder.out_channels, cfg.bits)
        self.decoder = Decoder(cfg)
        self.later = nn.ModuleList(Block(cfg) for _ in cfg.blocks)   # the networks of the later blocks (if any)
        self._compiled: dict = {}   # compile_training's compiled encoders and decoders, used only where grad is on
        if cfg.residual_gain:  # log g_t for t = 1..iterations (later iterations reuse the last); 0 = no scaling
            self.log_gain = nn.Parameter(torch.zeros(cfg.iterations))
        self.tail: LinearTail | None = None   # linear stages for the late iterations (nets/tail.py), fitted afterwards

    def block(self, t: int) -> int:
        """Which network runs iteration t (from 0): 0 for the first, k for the k-th of CodecConfig.blocks."""
        return bisect.bisect_right(self.config.blocks, t)

    def networks(self, t: int) -> tuple[Encoder, Binarizer, Decoder]:
        """The encoder, binarizer and decoder of iteration t (from 0)."""
        k = self.block(t)
        net = self if k == 0 else self.later[k - 1]
        return net.encoder, net.binarizer, net.decoder

    def all_networks(self) -> list[tuple[Encoder, Binarizer, Decoder]]:
        """Every block's encoder, binarizer and decoder, the first block first."""
        return [(self.encoder, self.binarizer, self.decoder)] + [(b.encoder, b.binarizer, b.decoder) for b in self.later]

    def parameter_groups(self) -> list[dict]:
        """The optimizer's parameter groups: the residual gains (if any), which learn GAIN_LR_SCALE times faster, and
        the networks' weights ("lr_scale": the multiple of the schedule's learning rate), in the order of parameters()
        (the order the optimizer's state in a checkpoint has)."""
        gain = self.log_gain if self.config.residual_gain else None
        groups: dict[float, list] = {}   # in the order the parameters come (log_gain, the codec's own, first)
        for p in self.parameters():
            groups.setdefault(GAIN_LR_SCALE if p is gain else 1.0, []).append(p)
        return [{"params": ps, "lr_scale": scale} for scale, ps in groups.items()]

    def set_stochastic_bits(self, stochastic: bool) -> "RecurrentCodec":
        """Training's binarization: the paper's stochastic bits (True) or inference's sign (False), both with a
        straight-through gradient. Inference always takes the sign."""
        for _, binarizer, _ in self.all_networks():
            binarizer.stochastic = stochastic
        return self

    def compile_training(self) -> "RecurrentCodec":
        """torch.compile every encoder and decoder for training's steps (grad on); inference (evaluation, coding)
        keeps the eager modules and their own in-place path, which compiled graphs cannot trace."""
        for encoder, _, decoder in self.all_networks():
            for net in (encoder, decoder):
                self._compiled[net] = torch.compile(net)
        return self

    @property
    def compiled(self) -> bool:
        """Whether compile_training has run."""
        return bool(self._compiled)

    def set_tail(self, tail: LinearTail | None) -> "RecurrentCodec":
        """The linear stages that run the iterations from tail.start on (a weights file's), or None: the networks run
        every iteration."""
        self.tail = tail
        return self

    def in_tail(self, t: int) -> bool:
        """Whether iteration t (from 0) is one of the linear tail's stages rather than a run of the networks."""
        return self.tail is not None and self.tail.covers(t)

    def gain(self, t: int) -> torch.Tensor | float:
        """g_t of iteration t (from 0): what the residual is multiplied by before the encoder and the decoder's
        output divided by. 1.0 for models without residual_gain."""
        if not self.config.residual_gain:
            return 1.0
        return self.log_gain[min(t, self.log_gain.numel() - 1)].float().exp()

    def set_precision(self, precision: str) -> "RecurrentCodec":
        """Inference arithmetic: "fp32", or "bf16" (the encoder's and the decoder's cells compute their convolutions
        and gates in bfloat16 with copies of their weights, and keep their cell state c_t, a sum over all
        iterations, in fp32; the binarizer's sign is taken in fp32; the parameters stay as the weights file holds
        them, so the fingerprint and an export are unchanged; the residual, the reconstruction x̂_t and the
        decoder's last 1x1 projection stay fp32). bf16 halves the memory traffic and runs on the matrix units of CPUs
        that have them (AMX, AVX512-BF16). The bits a file holds are entropy-coded by integers either way, so a file
        decodes in both; the pixels differ from fp32's by bf16 rounding (docs/format.md)."""
        self.compute_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
        for encoder, _, decoder in self.all_networks():
            for cell in [*encoder.rnns, *decoder.rnns]:
                cell.fp32_state = True   # acts only where the gates are bf16 (cells.ConvLSTMCell)
        return self

    @property
    def precision(self) -> str:
        """The inference arithmetic set_precision chose: "fp32" or "bf16"."""
        return "bf16" if self.compute_dtype == torch.bfloat16 else "fp32"

    def step(self, net: Callable, inp: torch.Tensor, state: list[State] | None, t: int
             ) -> tuple[torch.Tensor, list[State]]:
        """E_t or D_t: one run of the encoder or decoder; in the first iteration (t = 0) 1 + priming runs on the
        same input, of which only the last one's output is used."""
        inp = inp.to(self.compute_dtype)
        if torch.is_grad_enabled():
            net = self._compiled.get(net, net)
        for _ in range(1 + (self.config.priming if t == 0 else 0)):
            out, state = net(inp, state)
        return out, state

    def encode_step(self, r: torch.Tensor, state: list[State] | None, t: int, mask: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, list[State]]:
        """b_t = B(E_t(g_t·r_{t-1})), zero outside the block mask (N x 1 x H/16 x W/16 of 0/1) when one is given;
        in the linear tail, the signs of r_{t-1}'s projections (the encoder's state is then no longer used)."""
        if self.in_tail(t):
            b = self.tail.encode(r, t)
        else:
            encoder, binarizer, _ = self.networks(t)
            code, state = self.step(encoder, self.gain(t) * r, state, t)
            b = binarizer(code.float())   # the sign decisions in fp32 whatever the encoder's precision
        return (b if mask is None else b * mask), state

    def decode_step(self, b: torch.Tensor, x_hat: torch.Tensor | float, state: list[State] | None, t: int,
                    mask: torch.Tensor | None = None, tail: bool = True) -> tuple[torch.Tensor, list[State]]:
        """x̂_t = D_t(b_t)/g_t + x̂_{t-1} (one-shot models: D_t(b_t)); x̂_{t-1} kept where the block mask is 0.
        In the linear tail x̂_t = x̂_{t-1} + the stage's decode of b_t, and the decoder's state is the activity class
        of every block of x̂ where the tail starts. tail=False: the networks decode every iteration."""
        if tail and self.in_tail(t):
            if t == self.tail.start:
                state = self.tail.classes(x_hat)
            new = x_hat + self.tail.decode(b, t, state)
            return (new if mask is None else keep_stopped(mask, new, x_hat)), state
        out, state = self.step(self.networks(t)[2], b, state, t)
        new = x_hat + out / self.gain(t) if self.config.additive else out
        return (new if mask is None else keep_stopped(mask, new, x_hat)), state

    def iterate(self, x: torch.Tensor, iterations: int, active: Gate | None = None, decode_last: bool = True
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """The recurrence: yields (b_t, x̂_t) for t = 1..iterations, from r_0 = x.

        active(t, x̂_{t-1}), when given, returns the blocks that receive iteration t (t from 0) as a block mask,
        or None for all of them (spatially adaptive bit rates). decode_last=False leaves out the last
        decoder run (x̂_T is None): what an encoder that only wants the bits does."""
        r, x_hat, enc_state, dec_state = x, torch.zeros_like(x), None, None
        for t in range(iterations):
            mask = None if active is None else active(t, x_hat)
            b, enc_state = self.encode_step(r, enc_state, t, mask)                 # b_t = B(E_t(r_{t-1}))
            if t + 1 == iterations and not decode_last:
                yield b, None
                return
            x_hat, dec_state = self.decode_step(b, x_hat, dec_state, t, mask)      # x̂_t = D_t(b_t) + x̂_{t-1}
            r = x - x_hat                                                          # r_t = x − x̂_t
            yield b, x_hat

    def forward(self, x: torch.Tensor, iterations: int, stops: torch.Tensor | None = None, grad_from: int = 0
                ) -> CodecOutput:
        """Training's entry point (what DDP and torch.compile wrap): the recurrence over `iterations` iterations
        (CodecOutput). stops (N x 1 x H/16 x W/16), when given: how many iterations each block receives (adaptive
        bit rates). grad_from = k runs the first k iterations without gradients (the frozen blocks before the one
        being trained); their reconstructions are left out."""
        active = None if stops is None else (lambda t, _x_hat: (stops > t).to(x.dtype))
        steps = self.iterate(x, iterations, active)
        with torch.no_grad():
            frozen = [next(steps) for _ in range(grad_from)]
        bits, x_hats = zip(*frozen, *steps)
        return CodecOutput(list(x_hats[grad_from:]), list(bits), grad_from)

    def decode_reference(self, bits: Iterable[torch.Tensor], masks: Iterable[torch.Tensor | None] | None = None,
                         tail: bool = True) -> Iterator[torch.Tensor]:
        """The reference decoder: the recurrence as written, x̂_t = D_t(b_t)/g_t + x̂_{t-1}, one decode_step per
        bit plane; yields x̂_t for each. What the fast decoder (nets/decoding.py) is tested against; both are chosen by
        nets.decoding.reconstruct."""
        x_hat, state = 0.0, None
        for t, (b, mask) in enumerate(zip(bits, masks if masks is not None else itertools.repeat(None))):
            x_hat, state = self.decode_step(b, x_hat, state, t, mask, tail)
            yield x_hat


@dataclass
class CodecOutput:
    """What RecurrentCodec.forward returns: the reconstructions the distortion is measured on, the bits the rate
    term prices (training.losses.RateDistortionLoss takes the two)."""

    x_hats: list[torch.Tensor]   # x̂_t for t = first + 1..T, N x 3 x H x W in [-0.5, 0.5] (unclamped)
    bits: list[torch.Tensor]     # b_t for t = 1..T, N x bits x H/16 x W/16 of ±1 (straight-through in training),
                                 # 0 in blocks that received no bits (stops)
    first: int = 0               # the iterations run without gradients and left out of x_hats (grad_from)

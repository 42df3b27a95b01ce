"""The recurrent codec of Toderici et al. 2017, "Full Resolution Image Compression
with Recurrent Neural Networks": encoder E, binarizer B and decoder D, run for
t = 1..T iterations on the residual of the previous one.

    b_t  = B(E_t(r_{t-1}))              32 bits per 16x16 block
    x̂_t = D_t(b_t) + γ·x̂_{t-1}         γ = 0 at t = 1, then 1 (additive)
    r_t  = x − x̂_t,     r_0 = x

With residual_gain, iteration t works on a residual scaled by a learned gain g_t (one number per
iteration, the same for every image): b_t = B(E_t(g_t·r_{t-1})), x̂_t = D_t(b_t)/g_t + x̂_{t-1}, so
that late iterations see residuals as large as early ones (after Covell et al. 2017's residual scaling).

Images enter as float tensors in [-0.5, 0.5], N x 3 x H x W, H and W multiples of 16.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
import itertools
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from .cells import CELLS, State, depth_to_space

BLOCK = 16  # pixels per side of the block that one code vector describes
GAIN_LR_SCALE = 10.0  # the residual gains learn this many times faster than the network's weights
Gate = Callable[[int, torch.Tensor], "torch.Tensor | None"]  # see RecurrentCodec.iterate


@dataclass(frozen=True)
class CodecConfig:
    """Everything needed to rebuild a codec model; stored inside every weights file."""

    width: float = 0.25       # channel multiplier of the paper's network (1.0 = 64/256/512/512)
    cell: str = "lstm"        # "lstm" or "gru"
    bits: int = 32            # bits per 16x16 block per iteration
    iterations: int = 16      # iterations the model was trained for
    additive: bool = True     # x̂_t = D(b_t) + x̂_{t-1}; False: one-shot, x̂_t = D(b_t)
    decoder_hidden_kernel: int = 3  # hidden-state kernel of the decoder's two full-resolution cells (1: less than half the decoder's work)
    decoder_hidden: tuple[int, ...] = ()  # hidden channels of the decoder's four cells; () = 512, 512, 256, 128 times width
    encoder_hidden: tuple[int, ...] = ()  # hidden channels of the encoder's three cells; () = 256, 512, 512 times width
    priming: int = 0          # extra runs of E and D in the first iteration, on the same input, that build up their hidden
                              # state before any bit or pixel comes out (Johnston et al. 2018's hidden-state priming)
    residual_gain: bool = False  # a learned gain per iteration on the residual (module docstring); additive only

    def __post_init__(self):
        if self.decoder_hidden and (len(self.decoder_hidden) != 4 or any(c <= 0 or c % 4 for c in self.decoder_hidden)):
            raise ValueError(f"decoder_hidden must be four positive multiples of 4, not {self.decoder_hidden}")
        if self.encoder_hidden and (len(self.encoder_hidden) != 3 or any(c <= 0 for c in self.encoder_hidden)):
            raise ValueError(f"encoder_hidden must be three positive channel counts, not {self.encoder_hidden}")
        if not 0 <= self.priming <= 8:
            raise ValueError(f"priming must be 0..8 extra runs, not {self.priming}")
        if self.residual_gain and not self.additive:
            raise ValueError("residual_gain needs additive reconstruction")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CodecConfig":
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        for key in ("decoder_hidden", "encoder_hidden"):
            if key in kw:
                kw[key] = tuple(kw[key])
        return cls(**kw)


def _ch(base: int, width: float) -> int:
    """Scale a channel count, keeping it a multiple of 4 (depth-to-space needs that)."""
    return max(4, int(round(base * width / 4)) * 4)


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
        c0 = _ch(64, cfg.width)
        c1, c2, c3 = cfg.encoder_hidden or (_ch(c, cfg.width) for c in (256, 512, 512))
        self.out_channels = c3
        self.conv = nn.Conv2d(3, c0, 3, stride=2, padding=1)
        self.rnns = nn.ModuleList([
            cell(c0, c1, kernel=3, stride=2, hidden_kernel=1),
            cell(c1, c2, kernel=3, stride=2, hidden_kernel=1),
            cell(c2, c3, kernel=3, stride=2, hidden_kernel=1),
        ])

    def forward(self, r: torch.Tensor, states: list[State] | None) -> tuple[torch.Tensor, list[State]]:
        return run_stack(self.rnns, self.conv(r), states)


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
        y = torch.tanh(self.conv(x))
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
        c0 = _ch(512, cfg.width)
        c1, c2, c3, c4 = cfg.decoder_hidden or (_ch(c, cfg.width) for c in (512, 512, 256, 128))
        self.conv_in = nn.Conv2d(cfg.bits, c0, 1)
        self.rnns = nn.ModuleList([
            cell(c0, c1, kernel=3, hidden_kernel=1),
            cell(c1 // 4, c2, kernel=3, hidden_kernel=1),
            cell(c2 // 4, c3, kernel=3, hidden_kernel=cfg.decoder_hidden_kernel),
            cell(c3 // 4, c4, kernel=3, hidden_kernel=cfg.decoder_hidden_kernel),
        ])
        self.conv_out = nn.Conv2d(c4 // 4, 3, 1)

    def forward(self, b: torch.Tensor, states: list[State] | None) -> tuple[torch.Tensor, list[State]]:
        x, new_states = run_stack(self.rnns, self.conv_in(b), states, after=depth_to_space)
        return self.conv_out(x), new_states


def keep_stopped(mask: torch.Tensor, new: torch.Tensor, old: torch.Tensor | float) -> torch.Tensor:
    """x̂_t where the block mask (N x 1 x H/16 x W/16) is 1, x̂_{t-1} where it is 0."""
    pixels = mask.repeat_interleave(BLOCK, dim=2).repeat_interleave(BLOCK, dim=3) > 0
    return torch.where(pixels, new, old)


class RecurrentCodec(nn.Module):
    def __init__(self, cfg: CodecConfig = CodecConfig()):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.binarizer = Binarizer(self.encoder.out_channels, cfg.bits)
        self.decoder = Decoder(cfg)
        if cfg.residual_gain:  # log g_t for t = 1..iterations (later iterations reuse the last); 0 = no scaling
            self.log_gain = nn.Parameter(torch.zeros(cfg.iterations))
            self.log_gain.lr_scale = GAIN_LR_SCALE  # read by runtime.fit

    def gain(self, t: int) -> torch.Tensor | float:
        """g_t of iteration t (from 0): what the residual is multiplied by before the encoder and the decoder's
        output divided by. 1.0 for models without residual_gain."""
        if not self.config.residual_gain:
            return 1.0
        return self.log_gain[min(t, self.log_gain.numel() - 1)].float().exp()

    def step(self, net: nn.Module, inp: torch.Tensor, state: list[State] | None, t: int
             ) -> tuple[torch.Tensor, list[State]]:
        """E_t or D_t: one run of the encoder or decoder; in the first iteration (t = 0) 1 + priming runs on the
        same input, of which only the last one's output is used."""
        for _ in range(1 + (self.config.priming if t == 0 else 0)):
            out, state = net(inp, state)
        return out, state

    def iterate(self, x: torch.Tensor, iterations: int, active: Gate | None = None,
                final_reconstruction: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """The recurrence. Yields (b_t, x̂_t) for t = 1..iterations.

        active(t, x̂_{t-1}), when given, returns the blocks that receive iteration t (t from 0), an
        N x 1 x H/16 x W/16 mask of 0/1 (spatially adaptive bit rates): the others get zero bits
        and keep their reconstruction. final_reconstruction=False skips the decoder in the last
        iteration and yields (b_T, None): an encoder that only wants the bits saves one decoder run."""
        r, x_hat = x, torch.zeros_like(x)
        enc_state = dec_state = None
        for t in range(iterations):
            g = self.gain(t)
            code, enc_state = self.step(self.encoder, g * r, enc_state, t)
            b = self.binarizer(code)                                    # b_t = B(E_t(g_t·r_{t-1}))
            mask = None if active is None else active(t, x_hat)
            if mask is not None:
                b = b * mask
            if t == iterations - 1 and not final_reconstruction:
                yield b, None
                return
            out, dec_state = self.step(self.decoder, b, dec_state, t)
            new = x_hat + out / g if self.config.additive else out      # x̂_t = D_t(b_t)/g_t + γ·x̂_{t-1}
            x_hat = new if mask is None else keep_stopped(mask, new, x_hat)
            r = x - x_hat                                               # r_t = x − x̂_t
            yield b, x_hat

    def forward(self, x: torch.Tensor, iterations: int, stops: torch.Tensor | None = None, with_bits: bool = False
                ) -> list[torch.Tensor] | tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Training entry point (what DDP and torch.compile wrap): x̂_t for t = 1..iterations, and with_bits, also
        b_t (for a rate term). stops (N x 1 x H/16 x W/16), when given: how many iterations each block receives
        (adaptive bit rates)."""
        active = None if stops is None else (lambda t, _x_hat: (stops > t).to(x.dtype))
        bits, x_hats = zip(*self.iterate(x, iterations, active))
        return (list(x_hats), list(bits)) if with_bits else list(x_hats)

    def reconstruct(self, bits: Iterable[torch.Tensor], masks: Iterable[torch.Tensor | None] | None = None
                    ) -> Iterator[torch.Tensor]:
        """The decoder side alone: yields x̂_t for each bit plane b_t (N x bits x H/16 x W/16);
        masks: the blocks active in each iteration (as `iterate`'s `active` gave them), or None."""
        x_hat, dec_state = 0.0, None
        for t, (b, mask) in enumerate(zip(bits, masks if masks is not None else itertools.repeat(None))):
            out, dec_state = self.step(self.decoder, b, dec_state, t)
            new = x_hat + out / self.gain(t) if self.config.additive else out
            x_hat = new if mask is None else keep_stopped(mask, new, x_hat)
            yield x_hat

"""The recurrent codec's configuration (stored inside every weights file) and what it costs to run."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from lstmcodec.geometry import BLOCK
from lstmcodec.nets.cells import CELLS


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
    blocks: tuple[int, ...] = ()  # iterations (from 0) where a network with its own weights takes over (module docstring)

    def __post_init__(self):
        def integer(v) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)
        if isinstance(self.width, bool) or not isinstance(self.width, (int, float)) or not 0 < self.width <= 4:
            raise ValueError(f"width must be a number in (0, 4], not {self.width!r}")
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        if not integer(self.bits) or not 1 <= self.bits <= 32:
            raise ValueError(f"bits must be 1..32 per block, not {self.bits!r}")
        if not integer(self.iterations) or not 1 <= self.iterations <= 64:
            raise ValueError(f"iterations must be 1..64, not {self.iterations!r}")
        if self.decoder_hidden_kernel not in (1, 3) or not integer(self.decoder_hidden_kernel):
            raise ValueError(f"decoder_hidden_kernel must be 1 or 3, not {self.decoder_hidden_kernel!r}")
        if self.decoder_hidden and (len(self.decoder_hidden) != 4 or any(not integer(c) or not 0 < c <= 4096 or c % 4
                                                                          for c in self.decoder_hidden)):
            raise ValueError(f"decoder_hidden must be four multiples of 4 in 4..4096, not {self.decoder_hidden}")
        if self.encoder_hidden and (len(self.encoder_hidden) != 3 or any(not integer(c) or not 0 < c <= 4096
                                                                          for c in self.encoder_hidden)):
            raise ValueError(f"encoder_hidden must be three channel counts in 1..4096, not {self.encoder_hidden}")
        if not integer(self.priming) or not 0 <= self.priming <= 8:
            raise ValueError(f"priming must be 0..8 extra runs, not {self.priming!r}")
        if not isinstance(self.additive, bool) or not isinstance(self.residual_gain, bool):
            raise ValueError("additive and residual_gain must be true or false")
        if self.residual_gain and not self.additive:
            raise ValueError("residual_gain needs additive reconstruction")
        if not isinstance(self.blocks, tuple) or len(self.blocks) > 8 or any(not integer(b) for b in self.blocks) \
                or list(self.blocks) != sorted(set(self.blocks)) or any(not 1 <= b < 64 for b in self.blocks):
            raise ValueError(f"blocks must be at most 8 increasing iterations in 1..63, not {self.blocks!r}")
        if self.blocks and not self.additive:
            raise ValueError("blocks need additive reconstruction")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CodecConfig":
        """The configuration a weights file or checkpoint stores (unknown keys are ignored; ValueError on bad values)."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        for key in ("decoder_hidden", "encoder_hidden", "blocks"):
            if key in kw:
                if not isinstance(kw[key], (list, tuple)):
                    raise ValueError(f"{key} must be a list of whole numbers, not {kw[key]!r}")
                kw[key] = tuple(kw[key])
        return cls(**kw)

    @property
    def block(self) -> int:
        """Pixels per side of the block one code vector describes (the encoder's downsampling)."""
        return BLOCK


def channels(base: int, width: float) -> int:
    """Scale a channel count, keeping it a multiple of 4 (depth-to-space needs that)."""
    return max(4, int(round(base * width / 4)) * 4)


def decoder_macs(cfg: CodecConfig) -> float:
    """Multiply-adds per image pixel of one iteration of the decoder (its gate convolutions, at their resolutions)."""
    c0 = channels(512, cfg.width)
    c1, c2, c3, c4 = cfg.decoder_hidden or (channels(c, cfg.width) for c in (512, 512, 256, 128))
    k = cfg.decoder_hidden_kernel ** 2
    macs = cfg.bits * c0 / 256                                        # conv_in at 1/16 resolution
    for (cin, hidden, hk), area in zip([(c0, c1, 1), (c1 // 4, c2, 1), (c2 // 4, c3, k), (c3 // 4, c4, k)],
                                       (1 / 256, 1 / 64, 1 / 16, 1 / 4)):
        macs += 4 * hidden * (9 * cin + hk * hidden) * area
    return macs + 3 * c4 / 4


# `fast`'s decoder, the unit of the decoding work budget (container.check_work)
FAST_DECODER_MACS = decoder_macs(CodecConfig(decoder_hidden=(128, 128, 48, 24), decoder_hidden_kernel=1))


def decoder_cost(cfg: CodecConfig) -> float:
    """The decoder's cost per pixel relative to the bundled `fast` model's (at least 1: no model is cheaper to run
    than what the budget assumes)."""
    return max(1.0, decoder_macs(cfg) / FAST_DECODER_MACS)

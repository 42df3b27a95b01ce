"""The linear tail: the iterations from `start` on, coded by fixed linear stages instead of the networks.

Late in the recurrence the networks stop removing the residual's energy (under 2 % per iteration from t = 12,
nothing at t = 15-16; docs/experiments.md): what is left is fine texture that their 32 bits per block no longer
describe. A linear stage does: iteration start + 1 + s (counting from 1) projects each 16x16x3 block
of the residual on the 32 directions of stage s (the principal components of such residuals on training
images, fitted in closed form by scripts/fit_tail.py) and sends the signs,

    b_t[k] = sign(<P_s[k], r_{t-1}>)                       (sign(0) = +1)
    x̂_t   = x̂_{t-1} + Σ_k b_t[k] · m_s[a, k] · P_s[k]     per block,

where the magnitude m_s[a, k] is the mean |<P_s[k], r>| of the training blocks in the same activity class a.
The class is what the decoder already knows about a block's texture: the RMS of the high-pass of x̂_start's
luma over the block (`activity`), cut into classes at fixed edges. Each stage is the recurrence's E_t and D_t
for its iteration: 32 bits per block, and any prefix of a file is still a coarser image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lstmcodec.geometry import BLOCK

DIM = 3 * BLOCK * BLOCK   # a block's values, in (channel, row, column) order
MIN_GAIN = 0.02           # the encoder's default: a block stops receiving stages once one removes less than this
                          # of its squared error (a block's 768 values in [-0.5, 0.5]: about 1.7 per value on the
                          # 0-255 scale); docs/experiments.md, "The linear tail", has how it was chosen


def to_blocks(x: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W -> N x H/16 x W/16 x 768."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // BLOCK, BLOCK, w // BLOCK, BLOCK).permute(0, 2, 4, 1, 3, 5).reshape(
        n, h // BLOCK, w // BLOCK, DIM)


def from_blocks(v: torch.Tensor) -> torch.Tensor:
    """N x H/16 x W/16 x 768 -> N x 3 x H x W."""
    n, hb, wb, _ = v.shape
    return v.reshape(n, hb, wb, 3, BLOCK, BLOCK).permute(0, 3, 1, 4, 2, 5).reshape(n, 3, hb * BLOCK, wb * BLOCK)


def activity(x_hat: torch.Tensor) -> torch.Tensor:
    """Per block (N x H/16 x W/16, float64): the RMS of the luma's high-pass, luma = (R + G + B) / 3 and
    high-pass = luma - its 3x3 mean (edges replicated), of a reconstruction in the model's [-0.5, 0.5] range."""
    y = x_hat.double().sum(1, keepdim=True) / 3
    hp = y - F.avg_pool2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return F.avg_pool2d(hp * hp, BLOCK).sqrt()[:, 0]


class LinearTail(nn.Module):
    """Stages start+1, start+2, ... of the recurrence (iterations beyond the last stage reuse it).

    basis: S x bits x 768 (rows of unit length), edges: A - 1 increasing activity edges, magnitude: S x A x bits."""

    def __init__(self, start: int, basis: torch.Tensor, edges: torch.Tensor, magnitude: torch.Tensor):
        super().__init__()
        check(start, basis, edges, magnitude)
        self.start = start
        # not in the state dict: the weights file keeps the tail beside the networks' tensors (weights.py)
        self.register_buffer("basis", basis.half().float(), persistent=False)   # fp16 values: decode is exact
        self.register_buffer("edges", edges.double(), persistent=False)
        self.register_buffer("magnitude", magnitude.half().float(), persistent=False)

    @property
    def stages(self) -> int:
        return self.basis.shape[0]

    def covers(self, t: int) -> bool:
        """Whether iteration t (from 0) is a tail stage."""
        return t >= self.start

    def stage(self, t: int) -> int:
        return min(t - self.start, self.stages - 1)

    def classes(self, x_hat: torch.Tensor) -> torch.Tensor:
        """The activity class of every block of x̂_start: N x H/16 x W/16 (int64)."""
        return torch.bucketize(activity(x_hat), self.edges, right=True)

    def encode(self, r: torch.Tensor, t: int) -> torch.Tensor:
        """b_t: the signs of the residual's projections (N x bits x H/16 x W/16, ±1)."""
        c = to_blocks(r.float()) @ self.basis[self.stage(t)].T
        return torch.where(c >= 0, 1.0, -1.0).permute(0, 3, 1, 2)

    def decode(self, b: torch.Tensor, t: int, classes: torch.Tensor) -> torch.Tensor:
        """What iteration t adds to x̂ (N x 3 x H x W): b_t (±1, or 0 where a block was not coded) times each
        block's magnitudes along the stage's directions. Exact, then rounded once: basis and magnitudes are fp16
        numbers of at most 1 in size, so every product is a multiple of 2^-48 below 1 and any sum of 32 of them is
        exact in float64, whatever the order of summation of the matrix product's kernel or thread count."""
        s = self.stage(t)
        coef = b.permute(0, 2, 3, 1).double() * self.magnitude[s][classes].double()
        return from_blocks((coef @ self.basis[s].double()).float())

    def arrays(self) -> dict[str, torch.Tensor]:
        """The tensors a weights file stores (basis and magnitude in fp16, as they are used)."""
        return {"start": torch.tensor([self.start]), "basis": self.basis.cpu().half(),
                "edges": self.edges.cpu().float(), "magnitude": self.magnitude.cpu().half()}

    @classmethod
    def from_arrays(cls, arrays: dict, bits: int) -> "LinearTail":
        """The tail of a weights file's dict; ValueError with the reason if it is not one."""
        if not isinstance(arrays, dict) or set(arrays) != {"start", "basis", "edges", "magnitude"} \
                or not all(isinstance(v, torch.Tensor) for v in arrays.values()):
            raise ValueError("it must hold the tensors start, basis, edges and magnitude")
        start = arrays["start"]
        if start.shape != (1,) or start.is_floating_point():
            raise ValueError("start must be one integer")
        basis = arrays["basis"]
        if basis.dim() != 3 or basis.shape[1] != bits:
            raise ValueError(f"basis must be stages x {bits} x {DIM}")
        return cls(int(start[0]), basis.float(), arrays["edges"].double(), arrays["magnitude"].float())


def check(start: int, basis: torch.Tensor, edges: torch.Tensor, magnitude: torch.Tensor) -> None:
    if not 1 <= start <= 63:
        raise ValueError(f"start must be 1..63, not {start}")
    if basis.dim() != 3 or not 1 <= basis.shape[0] <= 64 or basis.shape[2] != DIM or not 1 <= basis.shape[1] <= 32:
        raise ValueError(f"basis must be stages (1..64) x bits x {DIM}, not {tuple(basis.shape)}")
    if edges.dim() != 1 or edges.numel() > 255 or not bool(torch.isfinite(edges).all()) \
            or not bool((edges[1:] > edges[:-1]).all()):
        raise ValueError("edges must be at most 255 increasing finite numbers")
    if magnitude.shape != (basis.shape[0], edges.numel() + 1, basis.shape[1]):
        raise ValueError(f"magnitude must be stages x classes x bits, {basis.shape[0]} x {edges.numel() + 1} x "
                         f"{basis.shape[1]}, not {tuple(magnitude.shape)}")
    for name, v in (("basis", basis), ("magnitude", magnitude)):
        if not bool(torch.isfinite(v).all()) or float(v.abs().max()) > 1:
            raise ValueError(f"{name} must be finite numbers of at most 1 in size")


class Gate:
    """The encoder's choice of the blocks that receive each tail stage, as RecurrentCodec.iterate's `active`: a
    block receives stage t while that stage removes at least `min_gain` of its squared error (the encoder has the
    image, so it measures it), and no stage after the first it is refused (the file's iteration map holds one
    count per block). Bits that buy less than that in flat blocks are not sent; the networks' iterations before
    the tail go to every block. `alive` is the mask of the last stage (N x 1 x H/16 x W/16, 0/1)."""

    def __init__(self, tail: LinearTail, x: torch.Tensor, min_gain: float | None = None):
        self.tail, self.x, self.min_gain = tail, x, MIN_GAIN if min_gain is None else min_gain
        self.alive: torch.Tensor | None = None
        self.classes: torch.Tensor | None = None

    def __call__(self, t: int, x_hat: torch.Tensor) -> torch.Tensor | None:
        if not self.tail.covers(t):
            return None
        if self.classes is None:
            self.classes = self.tail.classes(x_hat)
        r = self.x - x_hat
        rest = r - self.tail.decode(self.tail.encode(r, t), t, self.classes)
        gain = to_blocks(r).square().sum(-1) - to_blocks(rest).square().sum(-1)
        keep = (gain >= self.min_gain).to(r.dtype)[:, None]
        self.alive = keep if self.alive is None else self.alive * keep
        return self.alive

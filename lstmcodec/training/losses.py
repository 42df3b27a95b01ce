"""Training objectives of the codec: a distortion between the crop x and each iteration's x̂_t, averaged
over the iterations t = 1..T, so that every prefix of the bit stream is trained to be a good image.

    l1        |x − x̂_t|                                              (Toderici et al.)
    ssim-l1   |x − x̂_t| weighted per pixel by 1 − local MS-SSIM(x, x̂_t), the weights normalised to mean 1
              per crop and held constant in the gradient: bits go where the structure is worst
              (after Johnston et al. 2018's SSIM-weighted L1)
    ms-ssim   1 − MS-SSIM(x, x̂_t), with the window and scales the crop allows (metrics.ms_ssim_tensor)
    mix       α·(1 − MS-SSIM) + (1 − α)·L1                           (Zhao et al. 2017 use α = 0.84)
    mse       (x − x̂_t)²: what PSNR measures
    db-mix    (1 − MS-SSIM)^α · MSE^(1 − α): with log=True, α·ln(1 − MS-SSIM) + (1 − α)·ln(MSE), the two
              curves the codec is judged by on their own dB scales. MS-SSIM gives its finest scale an exponent of
              0.0448, so a loss of mostly MS-SSIM hardly asks for the fine texture that PSNR (and the eye at
              high rates) sees; the MSE factor asks for it in proportion

With log=True the loss averages log d_t instead of d_t. Its gradient weighs iteration t by 1/d_t, so a late
iteration that halves an already small distortion counts as much as an early one that halves a large one:
the curve is trained on the log (dB) scale it is judged on. Under the plain mean, 1 − MS-SSIM's gradient
shrinks with the error, so the first iterations dominate and the recurrence stops improving after a few.

With a rate weight λ (train_codec.py --rate-weight), λ times `BitRate`'s estimate of the coded bits per raw
bit is added: a differentiable stand-in for the entropy coder, fitted beside the codec, whose gradient reaches
the encoder through the binarizer's straight-through sign, so that training trades distortion for bits that
the coder can predict instead of ignoring what the bits cost. Two forms (--rate-form):

    mean      λ · (coded bits / raw bits) over all the iterations: every bit is priced alike
    log       λ · the mean over the prefixes i = 1..T of ln(coded bits of b_1..b_i / raw bits of b_1..b_i):
              the rate on the same log scale and over the same prefixes as --log-distortion's distortion,
              so λ is the slope d ln(distortion) / d ln(rate) that training trades at every prefix. A bit
              of iteration t is priced by every prefix that contains it, Σ_{i≥t} 1 / R_i: with equal
              iterations iteration 1's bits cost H_T times the mean (3.4 for T = 16) and iteration T's 1/T.

Under `mean` a late iteration's bits cost as much as the first's while they improve only the last few
prefixes, so training learns to empty the last iterations (lstm-wide5 levels off from -i 13 on); `log`
prices each iteration by the prefixes it serves.

Images are N x 3 x H x W in [-0.5, 0.5] (the model's range); losses are computed in fp32.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
import torch.nn.functional as F

from lstmcodec.format.entropy import BUCKETS, iteration_bucket
from lstmcodec.metrics import local_ms_ssim, ms_ssim_tensor

LOSSES = ("l1", "ssim-l1", "ms-ssim", "mix", "mse", "db-mix")
Distortion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def l1(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    return (x - x_hat).abs().mean()


def mse(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    return (x - x_hat).pow(2).mean()


def ssim_weights(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """N x 1 x H x W: 1 − local MS-SSIM of x̂ against x, normalised to mean 1 per image, no gradient."""
    with torch.no_grad():
        w = (1 - local_ms_ssim(x + 0.5, x_hat.clamp(-0.5, 0.5) + 0.5)).clamp(min=0)[:, None]
        return w / w.mean(dim=(2, 3), keepdim=True).clamp(min=1e-6)


def ssim_weighted_l1(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    return (ssim_weights(x, x_hat) * (x - x_hat).abs()).mean()


def ms_ssim_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    return 1 - ms_ssim_tensor(x_hat + 0.5, x + 0.5, data_range=1.0)


def ms_ssim_loss_both_phases(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """1 − MS-SSIM averaged over the crop and the crop less its outer row and column of pixels. On the whole crop
    MS-SSIM's 2x downsampling averages the pixels of each 2x2 cell of the codec's grid, so an error that sums to
    zero within those cells (the decoder's last depth-to-space can learn one) is seen only by the finest scale;
    one pixel in, it averages across the cells and sees it at every scale, as it does on an image of odd size."""
    inner = (..., slice(1, -1), slice(1, -1))
    return (ms_ssim_loss(x, x_hat) + ms_ssim_loss(x[inner], x_hat[inner])) / 2


def distortion(name: str, alpha: float = 0.84, both_phases: bool = False) -> Distortion:
    """The per-iteration distortion called `name` (one of LOSSES); both_phases: its MS-SSIM term averaged over the
    two phases of the first downsampling (ms_ssim_loss_both_phases)."""
    ms = ms_ssim_loss_both_phases if both_phases else ms_ssim_loss
    if name == "l1":
        return l1
    if name == "ssim-l1":
        return ssim_weighted_l1
    if name == "ms-ssim":
        return ms
    if name == "mix":
        return lambda x, x_hat: alpha * ms(x, x_hat) + (1 - alpha) * l1(x, x_hat)
    if name == "mse":
        return mse
    if name == "db-mix":
        return lambda x, x_hat: (ms(x, x_hat).clamp(min=1e-8) ** alpha) * (mse(x, x_hat).clamp(min=1e-10)
                                                                           ** (1 - alpha))
    raise ValueError(f"unknown loss {name!r} (one of {', '.join(LOSSES)})")


def over_iterations(fn: Distortion, x: torch.Tensor, x_hats: list[torch.Tensor],
                    log: bool = False) -> tuple[torch.Tensor, dict]:
    """The training loss: fn (or its log) averaged over the iterations' reconstructions, and what to log."""
    x = x.float()
    with torch.autocast(x.device.type, enabled=False):  # SSIM's variances need fp32, not bf16
        d = torch.stack([fn(x, x_hat.float()) for x_hat in x_hats])
        loss = d.clamp(min=1e-8).log().mean() if log else d.mean()
    with torch.no_grad():
        first, last = l1(x, x_hats[0].float()), l1(x, x_hats[-1].float())
    return loss, {"l1_first": first, "l1_last": last, "unroll": float(len(x_hats))}


class BitRate(nn.Module):
    """The rate term: bits per raw bit of the iterations' bit planes under a logistic model of each bit given
    what the entropy coder's context model sees (entropy.py, method 3): the bits of the earlier channels at the
    same position and the previous iteration's bits there, with weights per iteration group (entropy.BUCKETS).

    A training aid only (not stored in weights files): the coder's own tables are learned after training
    (scripts/learn_entropy_tables.py). It starts at zero (one bit per bit, no gradient into the codec) and
    learns LR_SCALE times faster than the codec, so that it follows the bits as the codec changes them: on
    `lstm-wide3`'s bits of 64x64 training crops (16 iterations), Adam at 2e-2 fits it in about 100 steps, to
    0.751 bits per bit on other crops (near the coder's table and mixer: 0.735 on held-back images at -i 8),
    at 5e-3 in about 300 (one-off script, 2026-12-01).
    """

    LR_SCALE = 100.0  # 2e-2 where the codec trains at 2e-4

    def __init__(self, bits: int = 32):
        super().__init__()
        self.earlier = nn.Parameter(torch.zeros(BUCKETS, bits, bits))   # [group, channel, earlier channel], below the diagonal
        self.previous = nn.Parameter(torch.zeros(BUCKETS, bits, bits))  # [group, channel, channel of the previous iteration]
        self.bias = nn.Parameter(torch.zeros(BUCKETS, bits))
        self.register_buffer("causal", torch.ones(bits, bits).tril(-1), persistent=False)

    def parameter_groups(self) -> list[dict]:
        return [{"params": list(self.parameters()), "lr_scale": self.LR_SCALE}]

    def forward(self, planes: list[torch.Tensor]) -> torch.Tensor:
        """planes: b_t for t = 1..T, N x bits x h x w of ±1 (0 where a block received no bits in an adaptive
        crop, which costs nothing). Returns the mean cross-entropy in bits per coded bit (a 0-d fp32 tensor)."""
        return rate_term(*self.per_iteration(planes), "mean")

    def per_iteration(self, planes: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The modelled bits of each iteration's plane and the number of bits it codes (two fp32 vectors of T)."""
        with torch.autocast(planes[0].device.type, enabled=False):
            bits, count = [], []
            prev = torch.zeros_like(planes[0], dtype=torch.float32)
            for t, b in enumerate(planes):
                b, g = b.float(), iteration_bucket(t)
                logit = (torch.einsum("oc,nchw->nohw", self.earlier[g] * self.causal, b)
                         + torch.einsum("oc,nchw->nohw", self.previous[g], prev) + self.bias[g][:, None, None])
                live = (b != 0).float()
                bits.append((F.softplus(-b * logit) * live).sum() / math.log(2))  # -log2 p(b) for b = ±1
                count.append(live.sum())
                prev = b
            return torch.stack(bits), torch.stack(count)


RATE_FORMS = ("mean", "log")


def rate_term(bits: torch.Tensor, count: torch.Tensor, form: str = "mean") -> torch.Tensor:
    """The rate that --rate-weight prices (see the module's docstring), from BitRate.per_iteration's vectors."""
    if form == "mean":
        return bits.sum() / count.sum().clamp(min=1)
    if form == "log":
        per_prefix = bits.cumsum(0) / count.cumsum(0).clamp(min=1)  # bits per raw bit of b_1..b_i
        return per_prefix.clamp(min=1e-3).log().mean()
    raise ValueError(f"unknown rate form {form!r} (one of {', '.join(RATE_FORMS)})")


class RateDistortionLoss(nn.Module):
    """The codec's training objective (after CompressAI's RateDistortionLoss): a distortion over the iterations'
    reconstructions (over_iterations), plus rate_weight times the rate term of a BitRate model trained beside the
    codec (its parameters are this module's: runtime.fit trains and checkpoints them with the model).

        criterion = RateDistortionLoss(distortion("db-mix", 0.5), log=True, rate_weight=0.6, rate_form="log")
        loss, logged = criterion(codec(x, 16), x)
    """

    def __init__(self, fn: Distortion, log: bool = False, rate_weight: float = 0.0, rate_form: str = "mean",
                 bits: int = 32):
        super().__init__()
        if rate_form not in RATE_FORMS:
            raise ValueError(f"unknown rate form {rate_form!r} (one of {', '.join(RATE_FORMS)})")
        self.fn, self.log, self.rate_weight, self.rate_form = fn, log, rate_weight, rate_form
        self.rate = BitRate(bits) if rate_weight else None

    def parameter_groups(self) -> list[dict]:
        return self.rate.parameter_groups() if self.rate is not None else []

    def forward(self, output, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """output: the codec's CodecOutput for the crops x. Returns the loss and what to log."""
        loss, logged = over_iterations(self.fn, x, output.x_hats, log=self.log)
        if self.rate is None:
            return loss, logged
        bits, count = self.rate.per_iteration(output.bits)
        rate = rate_term(bits, count, self.rate_form)
        return loss + self.rate_weight * rate, {**logged, "bits_per_bit": rate_term(bits, count).detach()}


def add_objective_arguments(p) -> None:
    """The codec's training objective on a training script's command line (argparse); criterion() builds it."""
    helps = {
        "loss": "distortion averaged over the unrolled iterations (lstmcodec/training/losses.py's docstring)",
        "log-distortion": "average log(distortion) over the iterations instead of the distortion: late iterations "
                          "weigh as much as early ones on a log (dB) scale",
        "rate-weight": "add LAMBDA times the bits per raw bit of a logistic model of the bits fitted beside the codec "
                       "(BitRate): train for bits the entropy coder predicts well, not only for distortion (0: off)",
        "rate-form": "--rate-weight prices the mean bits per raw bit over all iterations (mean), or ln(bits per raw "
                     "bit) averaged over the prefixes 1..T, the scale and prefixes of --log-distortion (log; LAMBDA is "
                     "then the slope d ln D / d ln R traded)",
        "ms-ssim-both-phases": "the loss's MS-SSIM averaged over the crop and the crop one pixel in: the 2x "
                               "downsampling at both phases against the decoder's 2x2 cells (ms_ssim_loss_both_phases)",
        "mix-alpha": "--loss mix: weight of 1 - MS-SSIM (the rest: L1); --loss db-mix: its exponent (the rest: MSE's)",
    }
    kinds = {"loss": dict(choices=LOSSES, default="l1"), "log-distortion": dict(action="store_true"),
             "rate-weight": dict(type=float, default=0.0, metavar="LAMBDA"),
             "rate-form": dict(choices=RATE_FORMS, default="mean"), "ms-ssim-both-phases": dict(action="store_true"),
             "mix-alpha": dict(type=float, default=0.84)}
    for name, text in helps.items():
        p.add_argument(f"--{name}", help=text, **kinds[name])


def criterion(args, bits: int = 32) -> RateDistortionLoss:
    """The RateDistortionLoss that add_objective_arguments' options describe."""
    return RateDistortionLoss(distortion(args.loss, args.mix_alpha, args.ms_ssim_both_phases), args.log_distortion,
                              args.rate_weight, args.rate_form, bits)

"""Quality and rate metrics: PSNR, MS-SSIM (pytorch-msssim), bits per pixel, Bjøntegaard delta rate."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim as _ms_ssim, ssim as _ssim

def _as_batch(img) -> torch.Tensor:
    """HxWx3 / HxW uint8 array, or N x C x H x W tensor -> float N x C x H x W on the 0..255 scale."""
    if isinstance(img, torch.Tensor):
        t = img.float()
    else:
        a = np.asarray(img)
        if a.ndim == 2:
            a = a[..., None]
        t = torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1)
    return t if t.dim() == 4 else t.unsqueeze(0)


def psnr(a, b, data_range: float = 255.0) -> float:
    """PSNR in dB over all pixels and channels (RGB PSNR as CompressAI reports it)."""
    mse = float(((_as_batch(a) - _as_batch(b)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(data_range**2 / mse)


def ms_ssim(a, b, data_range: float = 255.0) -> float:
    """MS-SSIM (pytorch-msssim: five scales, 11x11 gaussian window, standard weights): Wang et al. 2003's
    multi-scale form, as the compression literature and CompressAI report it. (The recurrent-compression text among
    the project's source documents defines "MS-SSIM" as the mean of windowed single-scale SSIM, pytorch-msssim's `ssim`, not reported here.)

    Fallback for small images, whose short side must exceed 160 px for the standard form:
    33..160 px: five scales with the largest odd window w that fits ((w - 1) * 16 < side);
    3..32 px: single-scale SSIM with the largest odd window up to 11 that fits;
    under 3 px: 1 - mean absolute error / data_range.
    """
    return float(ms_ssim_tensor(_as_batch(a), _as_batch(b), data_range))


def ms_ssim_tensor(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """ms_ssim on N x C x H x W float tensors, differentiable (a training loss): the mean over the batch."""
    side = min(x.shape[-2:])
    if side > 160:
        return _ms_ssim(x, y, data_range=data_range, size_average=True)
    if side > 32:
        win = (side - 1) // 16 + 1
        win -= 1 - win % 2
        return _ms_ssim(x, y, data_range=data_range, size_average=True, win_size=win)
    win = min(11, side if side % 2 else side - 1)
    if win < 3:
        return 1.0 - (x - y).abs().mean() / data_range
    return _ssim(x, y, data_range=data_range, win_size=win, size_average=True)


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a decibel scale, -10 log10(1 - MS-SSIM), as the field plots it."""
    return -10 * math.log10(max(1e-10, 1 - value))


def bpp(num_bytes: int, width: int, height: int) -> float:
    return 8.0 * num_bytes / (width * height)


def bd_rate(rate_a, dist_a, rate_b, dist_b) -> float:
    """Bjøntegaard delta rate of curve B against anchor A, in percent (negative: B needs fewer bits).

    Piecewise-cubic (PCHIP) interpolation of log-rate over distortion, integrated over the overlap
    of the two distortion ranges. Returns nan when the ranges do not overlap.
    """
    ra, da = _sorted(np.log(np.asarray(rate_a, float)), np.asarray(dist_a, float))
    rb, db = _sorted(np.log(np.asarray(rate_b, float)), np.asarray(dist_b, float))
    lo, hi = max(da.min(), db.min()), min(da.max(), db.max())
    if not hi > lo:
        return float("nan")
    grid = np.linspace(lo, hi, 200)
    diff = np.trapezoid(_pchip(db, rb, grid) - _pchip(da, ra, grid), grid) / (hi - lo)
    return float((np.exp(diff) - 1) * 100)


def _sorted(r: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(d)
    d, r = d[order], r[order]
    keep = np.concatenate([[True], np.diff(d) > 0])  # distortion must increase strictly
    return r[keep], d[keep]


def _pchip(x: np.ndarray, y: np.ndarray, xq: np.ndarray) -> np.ndarray:
    """Monotone piecewise-cubic Hermite interpolation (Fritsch–Carlson), as in Bjøntegaard's method."""
    if len(x) < 2:
        return np.full_like(xq, y[0])
    h = np.diff(x)
    delta = np.diff(y) / h
    m = np.zeros_like(y)
    for k in range(1, len(x) - 1):
        if delta[k - 1] * delta[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            m[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])
    m[0], m[-1] = delta[0], delta[-1]
    i = np.clip(np.searchsorted(x, xq) - 1, 0, len(x) - 2)
    t = (xq - x[i]) / h[i]
    h00, h10, h01, h11 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t, -2 * t**3 + 3 * t**2, t**3 - t**2
    return h00 * y[i] + h10 * h[i] * m[i] + h01 * y[i + 1] + h11 * h[i] * m[i + 1]


# ----------------------------------------------------------------------------- local quality (adaptive bit rates)

_MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)   # the standard MS-SSIM scale weights


def _gauss_blur(x: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Separable gaussian filter, 'valid' (the output is size - 1 smaller per side) unless the input is
    smaller than the window, which is then edge-replicated first."""
    g = torch.exp(-((torch.arange(size, dtype=x.dtype, device=x.device) - size // 2) ** 2) / (2 * sigma**2))
    g = (g / g.sum()).view(1, 1, 1, -1).repeat(x.shape[1], 1, 1, 1)
    if min(x.shape[-2:]) < size:
        x = F.pad(x, (size // 2,) * 4, mode="replicate")
    return F.conv2d(F.conv2d(x, g, groups=x.shape[1]), g.transpose(2, 3), groups=x.shape[1])


def ms_ssim_scales(a, b, data_range: float = 255.0) -> list[float]:
    """MS-SSIM's five factors of two images (H x W x 3 arrays or tensors, as `ms_ssim` takes them): the mean
    contrast-structure term at scales 1-4 (full resolution first) and the mean SSIM at scale 5, each over the
    channels; MS-SSIM is close to Π_j factor_j ** weight_j (pytorch-msssim pads odd sizes before halving).
    Where its loss lies: weight_j · (1 - factor_j) is about scale j's share of -ln MS-SSIM."""
    x, y = _as_batch(a).double(), _as_batch(b).double()
    out = []
    for s in range(len(_MS_WEIGHTS)):
        out.append(float(_scale_term(x, y, data_range, s == len(_MS_WEIGHTS) - 1).mean()))
        x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return out


def _scale_term(x: torch.Tensor, y: torch.Tensor, data_range: float, coarsest: bool) -> torch.Tensor:
    """MS-SSIM's map at one scale (the gaussian window 'valid', per channel): the contrast-structure term, times
    the luminance term at the coarsest scale."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my, xx, yy, xy = _gauss_blur(torch.cat([x, y, x * x, y * y, x * y], dim=1)).chunk(5, dim=1)
    vx, vy, cov = xx - mx**2, yy - my**2, xy - mx * my
    term = (2 * cov + c2) / (vx + vy + c2)                           # contrast-structure
    if coarsest:
        term = term * (2 * mx * my + c1) / (mx**2 + my**2 + c1)      # luminance at the coarsest scale
    return term


def local_ms_ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """A per-pixel MS-SSIM map (N x H x W) of two N x C x H x W images.

    At each of the five scales the SSIM terms are computed with the standard 11x11 gaussian window
    (where the window does not fit, the nearest value is replicated outwards), brought back to full size, and combined pixel by
    pixel with the standard weights; channels are averaged. Pooled over a region it estimates that
    region's MS-SSIM (its mean over a whole image is close to, not equal to, pytorch-msssim's value),
    which is what the encoder's spatially adaptive mode compares with the quality target.
    Scales stop early on images too small to halve again.
    """
    h, w = a.shape[-2:]
    x, y = a.float(), b.float()
    out = torch.ones(a.shape[0], a.shape[1], h, w, device=a.device)
    scales = [wt for s, wt in enumerate(_MS_WEIGHTS) if min(h, w) >> s >= 1]
    for s, weight in enumerate(scales):
        term = _scale_term(x, y, data_range, s == len(scales) - 1)
        if term.shape[-2:] != x.shape[-2:]:  # a valid filter: replicate the border values outwards
            dh, dw = x.shape[-2] - term.shape[-2], x.shape[-1] - term.shape[-1]
            term = F.pad(term, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="replicate")
        term = F.interpolate(term.clamp(min=0), size=(h, w), mode="nearest")
        out = out * term ** (weight / sum(scales))
        if s < len(scales) - 1:
            x, y = (F.avg_pool2d(t, 2, ceil_mode=True) for t in (x, y))
    return out.mean(dim=1)

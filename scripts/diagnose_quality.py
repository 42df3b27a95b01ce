#!/usr/bin/env python3
"""Where the residual's energy goes, iteration by iteration: per colour channel (Y, Cb, Cr) and per spatial
frequency band, for a codec on a folder of photographs (the networks alone, no entropy coding).

    python scripts/diagnose_quality.py ../shared/data/kodak --model fast --iterations 16

For every iteration t it prints the PSNR of x̂_t over RGB and in Y, Cb and Cr (BT.601, on the 0-255 scale), the
share of the remaining residual energy that iteration t removed, and how much of the photo's own energy is left
in the residual in three bands of spatial frequency (below 1/16, 1/16-1/4 and above 1/4 cycles per pixel, radial,
of the luma): which part of the signal stops being coded when quality stops rising. PSNR here is of the mean
squared error over all the images (the bench reports the mean of per-image PSNR, a little higher); the energy
shares are means over the images.

    python scripts/diagnose_quality.py ../shared/data/bsds432 --model fast --iterations 16 --scales --webp 60 80

--scales adds where MS-SSIM's loss lies: for every iteration, 1 - each of MS-SSIM's five factors (the contrast-
structure terms at 1, 1/2, 1/4, 1/8 of the resolution, then SSIM at 1/16) and each scale's share of -ln MS-SSIM
(its weight times 1 - its factor); --webp Q ... the same for WebP at those qualities, with their bpp. (Iterations a
linear tail codes are its stages sent to every block: the encoder's gate is not applied here.)
"""
from __future__ import annotations

import argparse
import io
import math

import numpy as np
import torch
from PIL import Image

from lstmcodec.training import data
from lstmcodec.evaluation import metrics
from lstmcodec.models import zoo
from lstmcodec.coding.codec import to_tensor
from lstmcodec.io.imageio import open_image, prepare

YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
BANDS = ((0.0, 1 / 16), (1 / 16, 1 / 4), (1 / 4, 0.71))


def band_energy(y: torch.Tensor) -> np.ndarray:
    """Energy of a H x W luma image in the BANDS of radial frequency (cycles per pixel)."""
    f = torch.fft.fft2(y - y.mean())
    fy = torch.fft.fftfreq(y.shape[0])[:, None]
    fx = torch.fft.fftfreq(y.shape[1])[None, :]
    radius = (fy ** 2 + fx ** 2).sqrt()
    power = f.abs() ** 2
    return np.array([float(power[(radius >= lo) & (radius < hi)].sum()) for lo, hi in BANDS])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", help="folders or files")
    p.add_argument("--model", default=zoo.DEFAULT_CODEC)
    p.add_argument("--iterations", type=int, default=16)
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--scales", action="store_true", help="also MS-SSIM's loss per scale, per iteration")
    p.add_argument("--webp", type=int, nargs="*", default=[], help="with --scales: WebP at these qualities too")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    codec = zoo.load_codec(args.model)
    T = args.iterations
    mse = np.zeros((T, 4))          # RGB, Y, Cb, Cr
    removed = np.zeros(T)
    left = np.zeros((T, len(BANDS)))
    scales = np.zeros((T, 5))
    webp = np.zeros((len(args.webp), 6))   # bpp, then the five factors' losses
    files = data.list_images(args.images)[:args.limit]
    for f in files:
        rgb = prepare(open_image(f)).rgb
        h, w = rgb.shape[:2]
        x = to_tensor(rgb)
        orig = x[0, :, :h, :w].float() * 255 + 127.5
        ycc = torch.einsum("ij,jhw->ihw", YCBCR, orig)
        own = band_energy(ycc[0])
        prev = float(((orig - 127.5) ** 2).sum())
        with torch.inference_mode():
            for t, (_, x_hat) in enumerate(codec.iterate(x, T)):
                rec = ((x_hat[0, :, :h, :w].clamp(-0.5, 0.5) + 0.5) * 255).round()
                err = rec - orig
                e_ycc = torch.einsum("ij,jhw->ihw", YCBCR, err)
                mse[t] += [float(err.pow(2).mean()), *(float(c.pow(2).mean()) for c in e_ycc)]
                now = float(err.pow(2).sum())
                removed[t] += 1 - now / max(prev, 1e-9)
                prev = now
                left[t] += band_energy(e_ycc[0]) / np.maximum(own, 1e-9)
                if args.scales:
                    scales[t] += 1 - np.array(metrics.ms_ssim_scales(orig[None], rec[None]))
        for i, q in enumerate(args.webp if args.scales else []):
            out = io.BytesIO()
            Image.fromarray(rgb).save(out, "WEBP", quality=q)
            back = np.asarray(Image.open(io.BytesIO(out.getvalue())).convert("RGB"))
            webp[i] += [8 * out.tell() / (h * w), *(1 - np.array(metrics.ms_ssim_scales(rgb, back)))]
    n = len(files)
    print(f"{args.model} on {n} images, the networks alone ({T} iterations)")
    print(" t   PSNR RGB      Y     Cb     Cr   removed  | residual energy left: low   mid   high")
    for t in range(T):
        ps = [10 * math.log10(255 ** 2 / (m / n)) for m in mse[t]]
        print(f"{t + 1:2d}  {ps[0]:8.2f} {ps[1]:6.2f} {ps[2]:6.2f} {ps[3]:6.2f}   {removed[t] / n:6.3f}  |"
              f"                      {left[t][0] / n:5.3f} {left[t][1] / n:5.3f} {left[t][2] / n:5.3f}")
    if args.scales:
        weights = np.array(metrics._MS_WEIGHTS)
        print("\nMS-SSIM's loss per scale (1 - factor; full resolution first) | share of -ln MS-SSIM")
        rows = [(f"{t + 1:2d}", scales[t] / n) for t in range(T)]
        rows += [(f"WebP q{q} ({webp[i][0] / n:.3f} bpp)", webp[i][1:] / n) for i, q in enumerate(args.webp)]
        for name, loss in rows:
            share = weights * loss / (weights * loss).sum()
            print(f"{name:>22s}  " + " ".join(f"{v:7.4f}" for v in loss) + "  | " + " ".join(f"{v:5.2f}" for v in share))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Measure a denoiser on a folder of clean photographs, and what denoising before encoding buys.

    python scripts/eval_denoiser.py ../shared/data/kodak --model photo --sigmas 15 25 50
    python scripts/eval_denoiser.py ../shared/data/kodak --model photo --sigmas 25 --ensemble   # 8-pass self-ensemble
    python scripts/eval_denoiser.py ../shared/data/kodak --model photo --encode-sigma 15 --iterations 2 4 8 -o results/denoise-kodak.json
    python scripts/eval_denoiser.py ../shared/data/bsds432 --holdout --sigmas 25 --bm3d   # held-back photos, colour BM3D beside
    python scripts/eval_denoiser.py ../shared/data/bsds432 --holdout --sigmas 25 --photo --subsets 3   # as noisy 8-bit files

--bm3d runs colour BM3D (the reference implementation's `bm3d` package: `pip install bm3d`; not a
dependency of lstmcodec) on the same noisy inputs, so the learned denoiser is compared with the classical
bar on the same images in the same run.

PSNR protocol of the denoising literature: additive white gaussian noise of std sigma (0-255 scale), a
fixed seed per image, no clipping of the noisy input; the output is clipped and rounded to 8 bits.
With --photo the noisy input is clipped and rounded to 8 bits first, as a noisy photograph saved to a file is
(what `lstmcodec denoise` is given).
With --encode-sigma the noisy image is an ordinary 8-bit photo (clipped, rounded), coded with
lstmcodec with and without --denoise; bpp and MS-SSIM are measured against the clean original.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lstmcodec import api
from lstmcodec.training import data
from lstmcodec import metrics
from lstmcodec.format.fileinfo import info
from lstmcodec.tasks.denoiser import denoise_tensor, get_denoiser
from lstmcodec.io.imageio import prepare
from lstmcodec.models.zoo import DEFAULT_CODEC, DEFAULT_DENOISER
from PIL import Image


def noisy(clean: torch.Tensor, sigma: float, seed: int, photo: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    y = clean + sigma / 255 * torch.randn(clean.shape, generator=g)
    return data.as_8bit(y) if photo else y


def to_uint8(t: torch.Tensor) -> np.ndarray:
    return (t[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder")
    p.add_argument("--model", default=DEFAULT_DENOISER)
    p.add_argument("--sigmas", type=float, nargs="*", default=[15, 25, 50])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--photo", action="store_true", help="clip and round the noisy inputs to 8 bits (a noisy photograph's file)")
    p.add_argument("--ensemble", action="store_true", help="denoise with the 8-pass self-ensemble (denoise --ensemble)")
    p.add_argument("--limit", type=int)
    p.add_argument("--subsets", type=int, default=1, help="also the mean of this many interleaved subsets (image j, j+K, ...): "
                   "how far a set of this size strays")
    p.add_argument("--holdout", action="store_true", help="only the photographs the training scripts hold back (every 20th)")
    p.add_argument("--bm3d", action="store_true", help="also denoise with colour BM3D (needs `pip install bm3d`), reported beside")
    p.add_argument("--encode-sigma", type=float, help="also code noisy images of this sigma with and without --denoise")
    p.add_argument("--iterations", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--codec", default=DEFAULT_CODEC)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("-o", "--output", help="write the results as JSON")
    return p


def main() -> int:
    args = build_parser().parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bm3d = None
    if args.bm3d:
        try:
            import bm3d
        except ImportError:
            sys.exit("error: --bm3d needs the bm3d package (pip install bm3d)")
    try:
        files = data.list_images([args.folder])
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    if args.holdout:
        files = data.split_holdout(files)[1]
    files = files[: args.limit]
    if not files:
        sys.exit(f"error: no held-back photographs in {args.folder} (one in 20 is held back)")
    net = get_denoiser(args.model)
    results: dict = {"model": net.name, "folder": str(args.folder), "holdout": args.holdout, "images": len(files), "ensemble": args.ensemble,
                     "photo": args.photo,
                     "denoise": {}, "encode": {}}
    cleans = [data.load_rgb(f).float().div(255)[None] for f in files]
    megapixels = sum(x.shape[-1] * x.shape[-2] for x in cleans) / 1e6

    for sigma in args.sigmas:
        results["denoise"][f"{sigma:g}"] = denoise_row(args, net, cleans, sigma, bm3d, megapixels)
    if args.encode_sigma is not None:
        results["encode"] = encode_rows(args, net, cleans)
        results["encode_sigma"] = args.encode_sigma
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def denoise_row(args, net, cleans: list, sigma: float, bm3d, megapixels: float) -> dict:
    """PSNR before and after denoising at one sigma (and colour BM3D's, with --bm3d), with the time per image."""
    before, after, secs, classic, classic_secs = [], [], 0.0, [], 0.0
    for i, x in enumerate(cleans):
        y = noisy(x, sigma, args.seed * 1000 + i, args.photo)
        t0 = time.perf_counter()
        out = denoise_tensor(y, net, ensemble=args.ensemble)
        secs += time.perf_counter() - t0
        ref = to_uint8(x)
        before.append(metrics.psnr(to_uint8(y), ref))
        after.append(metrics.psnr(to_uint8(out), ref))
        if bm3d is not None:
            t0 = time.perf_counter()
            est = bm3d.bm3d_rgb(y[0].permute(1, 2, 0).double().numpy(), sigma_psd=sigma / 255)
            classic_secs += time.perf_counter() - t0
            classic.append(metrics.psnr(to_uint8(torch.from_numpy(np.ascontiguousarray(est)).permute(2, 0, 1)[None]), ref))
    per_mp = secs / megapixels
    row = {"noisy_psnr": float(np.mean(before)), "psnr": float(np.mean(after)), "psnr_min": float(np.min(after)),
           "psnr_max": float(np.max(after)), "seconds_per_image": secs / len(cleans), "seconds_per_megapixel": per_mp,
           "per_image": [round(v, 3) for v in after]}
    line = (f"sigma {sigma:g}: noisy {np.mean(before):.2f} dB -> denoised {np.mean(after):.2f} dB "
            f"(min {np.min(after):.2f}, max {np.max(after):.2f}; {secs / len(cleans):.2f} s/image, {per_mp:.2f} s/megapixel)")
    if args.subsets > 1:
        parts = [float(np.mean(after[j::args.subsets])) for j in range(args.subsets)]
        row["subsets"] = parts
        line += f"; {args.subsets} interleaved subsets: " + " / ".join(f"{v:.2f}" for v in parts) + f" (spread {max(parts) - min(parts):.2f} dB)"
    if classic:
        wins = sum(a > b for a, b in zip(after, classic))
        row["bm3d"] = {"psnr": float(np.mean(classic)), "seconds_per_image": classic_secs / len(cleans),
                       "per_image": [round(v, 3) for v in classic], "model_better_on": wins}
        line += f" | colour BM3D {np.mean(classic):.2f} dB ({classic_secs / len(cleans):.1f} s/image); model better on {wins}/{len(after)}"
    print(line, flush=True)
    return row


def encode_rows(args, net, cleans: list) -> dict:
    """--encode-sigma: noisy photographs coded with and without denoising first, at each of --iterations."""
    rows = {t: {"plain": [], "denoised": []} for t in args.iterations}
    encoded = {}
    top = max(args.iterations)
    for i, x in enumerate(cleans):
        ref = to_uint8(x)
        noisy_photo = to_uint8(noisy(x, args.encode_sigma, args.seed * 1000 + i))
        cleaned = to_uint8(denoise_tensor(torch.from_numpy(noisy_photo).permute(2, 0, 1)[None].float() / 255, net))
        for key, src in (("plain", noisy_photo), ("denoised", cleaned)):
            blob = api.encode_image(prepare(Image.fromarray(src)), top, args.codec).data
            sizes = info(blob).bpp_per_iteration
            for k, im in enumerate(api.decode_progressive(blob), start=1):
                if k in rows:
                    out = np.asarray(im.convert("RGB"))
                    rows[k][key].append((sizes[k - 1], metrics.ms_ssim(out, ref), metrics.psnr(out, ref)))
    for t, r in rows.items():
        entry = {key: {"bpp": float(np.mean([v[0] for v in vals])), "ms_ssim": float(np.mean([v[1] for v in vals])),
                       "psnr": float(np.mean([v[2] for v in vals]))} for key, vals in r.items()}
        encoded[str(t)] = entry
        print(f"sigma {args.encode_sigma:g}, -i {t}: plain {entry['plain']['bpp']:.3f} bpp MS-SSIM {entry['plain']['ms_ssim']:.4f}"
              f" | --denoise {entry['denoised']['bpp']:.3f} bpp MS-SSIM {entry['denoised']['ms_ssim']:.4f}", flush=True)
    return encoded


if __name__ == "__main__":
    raise SystemExit(main())

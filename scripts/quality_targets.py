#!/usr/bin/env python3
"""The codec's quality targets, checked on a bench's results folder (what `lstmcodec bench IMAGES -o DIR` wrote:
lstmcodec.json and the classical codecs' JSON of the same run).

    python scripts/quality_targets.py results/kodak                    # the Kodak targets
    python scripts/quality_targets.py results/colourful-fast --held-back   # the colourful held-back set's

Per iteration count: bpp, PSNR and MS-SSIM, the rise of MS-SSIM over the previous count, and JPEG's PSNR and MS-SSIM
at the same bpp (interpolated in log-bpp from the same run; "—" where JPEG cannot make a file that small). Then
each target, met or not:

  Kodak       MS-SSIM rises at every iteration (by >= 0.001 while below 0.99); PSNR at the last count >= 31.0 dB;
              MS-SSIM BD-rate against WebP < 0; PSNR BD-rate against JPEG <= -15 %; MS-SSIM above JPEG's at every count
  held-back   neither MS-SSIM nor PSNR below JPEG's at any count

Exit status 0 either way (a report, not a test); 2 when the folder lacks a file.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from lstmcodec import metrics
from lstmcodec.evaluation import bench

RISE = 0.001          # the least MS-SSIM an iteration must add ...
RISE_BELOW = 0.99     # ... while MS-SSIM is below this
PSNR_TOP = 31.0       # dB at the last iteration count
PSNR_BD_JPEG = -15.0  # % at most


def load(folder: Path, name: str) -> dict:
    path = folder / f"{name}.json"
    if not path.exists():
        sys.exit(f"error: {path} is missing (run lstmcodec bench ... -o {folder} with --codecs {name})")
    return bench.load_results(path)[0]["results"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path)
    p.add_argument("--held-back", action="store_true", help="the held-back set's target (not below JPEG) only")
    args = p.parse_args(argv)
    ours, jpeg = load(args.folder, "lstmcodec"), load(args.folder, "jpeg")
    rises, below_jpeg_ms, below_jpeg_psnr = [], [], []
    print(f"{'-i':>3} {'bpp':>7} {'PSNR':>6} {'MS-SSIM':>8} {'rise':>7} | {'JPEG PSNR':>9} {'MS-SSIM':>8}")
    for i, t in enumerate(ours["setting"]):
        bpp, ps, ms = ours["bpp"][i], ours["psnr-rgb"][i], ours["ms-ssim-rgb"][i]
        j_ps = bench.interpolate(jpeg["bpp"], jpeg["psnr-rgb"], bpp)
        j_ms = bench.interpolate(jpeg["bpp"], jpeg["ms-ssim-rgb"], bpp)
        rise = ms - ours["ms-ssim-rgb"][i - 1] if i else math.nan
        if i and ours["ms-ssim-rgb"][i - 1] < RISE_BELOW and not rise >= RISE:
            rises.append(t)
        if not math.isnan(j_ms) and ms < j_ms:
            below_jpeg_ms.append(t)
        if not math.isnan(j_ps) and ps < j_ps:
            below_jpeg_psnr.append(t)
        show = lambda v, f: "—".rjust(len(format(0.0, f))) if math.isnan(v) else format(v, f)  # noqa: E731
        print(f"{t:>3} {bpp:>7.4f} {ps:>6.2f} {ms:>8.4f} {show(rise, '+7.4f')} | {show(j_ps, '9.2f')} {show(j_ms, '8.4f')}")
    counts = lambda ts: ", ".join(map(str, ts)) if ts else "none"  # noqa: E731
    print()
    verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    if args.held_back:
        print(f"MS-SSIM below JPEG's at -i: {counts(below_jpeg_ms)}; PSNR below JPEG's at -i: {counts(below_jpeg_psnr)}"
              f" -> {verdict(not below_jpeg_ms and not below_jpeg_psnr)}")
        return 0
    webp = load(args.folder, "webp")
    bd_webp = metrics.bd_rate(webp["bpp"], webp["ms-ssim-rgb-db"], ours["bpp"], ours["ms-ssim-rgb-db"])
    bd_jpeg = metrics.bd_rate(jpeg["bpp"], jpeg["psnr-rgb"], ours["bpp"], ours["psnr-rgb"])
    top = ours["psnr-rgb"][-1]
    print(f"MS-SSIM rises by >= {RISE} at every -i while below {RISE_BELOW}: short at -i {counts(rises)} "
          f"-> {verdict(not rises)}")
    print(f"PSNR at -i {ours['setting'][-1]}: {top:.2f} dB (>= {PSNR_TOP}) -> {verdict(top >= PSNR_TOP)}")
    print(f"MS-SSIM BD-rate against WebP: {bd_webp:+.1f} % (< 0) -> {verdict(bd_webp < 0)}")
    print(f"PSNR BD-rate against JPEG: {bd_jpeg:+.1f} % (<= {PSNR_BD_JPEG:.0f} %) -> {verdict(bd_jpeg <= PSNR_BD_JPEG)}")
    print(f"MS-SSIM below JPEG's at -i: {counts(below_jpeg_ms)} -> {verdict(not below_jpeg_ms)} "
          "(JPEG cannot reach the lowest rates: '—' above)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

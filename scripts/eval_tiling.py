#!/usr/bin/env python3
"""Large images: peak memory and time of whole command-line runs, and whether tile seams show.

    python scripts/eval_tiling.py memory ../shared/data/kodak --size 6000x4000 --iterations 8
    python scripts/eval_tiling.py seams ../shared/data/kodak --side 256 --iterations 4 8

memory: builds a photograph of the given size as a mosaic of the folder's images (each one whole,
row after row), then runs `lstmcodec encode` and `lstmcodec decode` on it in fresh processes and
reports wall time, peak resident memory (the process's high-water mark) and bpp.

seams: codes every image of the folder twice, in tiles of --side pixels and whole, and compares
the squared error on the pixels next to tile edges (the 2 pixels on either side of every inner tile
edge) with the error of the untiled coding on the same pixels; the issue's bar is within 10 %.
It also reports the bits that the overlaps cost.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lstmcodec import api
from lstmcodec.coding import tiling
from lstmcodec.models import zoo
from lstmcodec.io.imageio import prepare

SUFFIXES = {".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff", ".webp"}


def images(folder: str) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in SUFFIXES)


def mosaic(folder: str, width: int, height: int) -> Image.Image:
    canvas = Image.new("RGB", (width, height))
    files, k, y = images(folder), 0, 0
    while y < height:
        x, row_h = 0, 0
        while x < width:
            with Image.open(files[k % len(files)]) as im:
                im = im.convert("RGB")
                canvas.paste(im, (x, y))
                x, row_h, k = x + im.width, max(row_h, im.height), k + 1
        y += row_h
    return canvas


WRAPPER = """import resource, runpy, sys
sys.argv = ["lstmcodec", *sys.argv[1:]]
try:
    runpy.run_module("lstmcodec", run_name="__main__")
finally:
    print("maxrss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def run(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident GiB (the process's own high-water mark) of one lstmcodec process."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode:
        sys.exit(f"lstmcodec {' '.join(args)} failed: {r.stderr.strip()}")
    peak_kib = int(r.stderr.strip().splitlines()[-1].split()[1])
    return wall, peak_kib / 2 ** 20


def memory(a) -> None:
    width, height = map(int, a.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as d:
        src, lstm, out = Path(d) / "big.png", Path(d) / "big.lstm", Path(d) / "out.png"
        mosaic(a.folder, width, height).save(src)
        print(f"{width}x{height} mosaic of {a.folder}, -i {a.iterations}, tiles {a.tiles}, model {a.model}, "
              f"precision {a.precision}")
        common = ["--device", a.device, "--precision", a.precision, "--quiet"]
        wall, peak = run(["encode", str(src), "-o", str(lstm), "-i", str(a.iterations), "--tiles", a.tiles,
                          "--model", a.model, *common])
        size = lstm.stat().st_size
        print(f"  encode: {wall:.1f} s, peak {peak:.2f} GiB, {size} bytes = {8 * size / (width * height):.4f} bpp")
        wall, peak = run(["decode", str(lstm), "-o", str(out), *common])
        print(f"  decode: {wall:.1f} s, peak {peak:.2f} GiB")


def seams(a) -> None:
    files = images(a.folder)[:a.limit or None]
    print(f"{len(files)} images of {a.folder}, tiles of {a.side} px overlapping by {tiling.OVERLAP} px")
    print("iter | seam error tiled/untiled | elsewhere | bytes tiled/untiled | PSNR tiled  untiled")
    for it in a.iterations:
        sums = np.zeros(6)
        for f in files:
            rgb = np.asarray(Image.open(f).convert("RGB"))
            src = prepare(Image.fromarray(rgb))
            tiled = api.encode_image(src, it, device=a.device, tiles=a.side).data
            plain = api.encode_image(src, it, device=a.device, tiles="off").data
            e_t = ((np.asarray(api.decode(tiled, device=a.device)).astype(float) - rgb) ** 2).mean(2)
            e_p = ((np.asarray(api.decode(plain, device=a.device)).astype(float) - rgb) ** 2).mean(2)
            seam = tiling.plan(rgb.shape[1], rgb.shape[0], a.side).seam_distance(*rgb.shape[:2]) < 2
            sums += [e_t[seam].sum(), e_p[seam].sum(), e_t[~seam].sum(), e_p[~seam].sum(), len(tiled), len(plain)]
            a.psnr.append((it, 10 * np.log10(255 ** 2 / e_t.mean()), 10 * np.log10(255 ** 2 / e_p.mean())))
        ps = np.array([p[1:] for p in a.psnr if p[0] == it]).mean(0)
        print(f"{it:4d} | {sums[0] / sums[1]:24.3f} | {sums[2] / sums[3]:9.3f} | {sums[4] / sums[5]:19.3f} | "
              f"{ps[0]:10.2f} {ps[1]:8.2f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    m = sub.add_parser("memory")
    m.add_argument("folder")
    m.add_argument("--size", default="6000x4000")
    m.add_argument("--iterations", type=int, default=8)
    m.add_argument("--tiles", default="auto")
    m.add_argument("--device", default="cpu")
    m.add_argument("--model", default="default")
    m.add_argument("--precision", default="auto", choices=zoo.PRECISIONS)
    s = sub.add_parser("seams")
    s.add_argument("folder")
    s.add_argument("--side", type=int, default=256)
    s.add_argument("--iterations", type=int, nargs="+", default=[4, 8])
    s.add_argument("--limit", type=int, default=0)
    s.add_argument("--device", default="cpu")
    a = p.parse_args()
    a.psnr = []
    memory(a) if a.what == "memory" else seams(a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

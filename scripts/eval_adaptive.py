#!/usr/bin/env python3
"""`encode --quality Q --adaptive` against plain `encode --quality Q` on a set of photographs.

    python scripts/eval_adaptive.py ../shared/data/kodak --targets 0.9 0.95 0.97
    python scripts/eval_adaptive.py --held-back ../shared/data/bsds432 --targets 0.9 0.95 0.97 -o results/adaptive

For every image: one plain file of 16 iterations (MAX_ITERATIONS), whose prefixes are what `--quality Q` keeps (the
fewest iterations that reach Q, the same bytes as `lstmcodec encode --quality Q` writes), and one `--adaptive` file
per target (coding.adaptive.encode_adaptive, as the CLI calls it). Every file is decoded; MS-SSIM (RGB) is measured
on the decoded pixels.

Per target, over the images where plain rate control reaches Q: the mean bpp of both and the saving of --adaptive
(of the mean bpp, and the median and worst of the images' own savings); and the saving at equal MS-SSIM, the bpp that
the image's plain prefixes need for the adaptive file's MS-SSIM (interpolated in MS-SSIM dB against log bpp) — what
the allocation buys apart from finer rate control. --held-back FOLDER: the photographs of a bsds432 folder that no
bundled model was trained on (every 20th by name).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from lstmcodec import metrics
from lstmcodec.coding import adaptive
from lstmcodec.format import container
from lstmcodec.format.fileinfo import info
from lstmcodec.io.files import list_images
from lstmcodec.io.imageio import open_image, prepare
from lstmcodec.models.zoo import DEFAULT_CODEC, load_codec
from lstmcodec.training.data import split_holdout

MAX_ITERATIONS = 16   # the most iterations any file here gets (what `encode --quality` tries by default)


def plain_curve(codec, src) -> dict:
    """The plain file's prefixes: bytes and decoded MS-SSIM of each iteration count."""
    full = codec.encode_source(src, MAX_ITERATIONS).data
    counts = len(info(full).iteration_bytes)
    ms = [metrics.ms_ssim(np.asarray(im.convert("RGB")), src.rgb) for im in codec.decompress_progressive(full)]
    return {"bytes": [len(container.truncate(full, k)) for k in range(1, counts + 1)], "ms-ssim": ms}


def adaptive_point(codec, src, target: float) -> dict:
    res, run = adaptive.encode_adaptive(codec, src, target, MAX_ITERATIONS)
    out = np.asarray(codec.decompress(res.data).convert("RGB"))
    return {"bytes": len(res.data), "ms-ssim": metrics.ms_ssim(out, src.rgb), "map": container.read(res.data).iteration_map
            is not None, "mean_iterations": float(run.counts.mean())}


def bytes_at(curve: dict, quality: float) -> float:
    """Bytes the plain prefixes need for `quality` (MS-SSIM dB against log bytes, linear); nan outside them."""
    d = np.array([metrics.ms_ssim_db(v) for v in curve["ms-ssim"]])
    r = np.log(np.asarray(curve["bytes"], dtype=float))
    order = np.argsort(d)
    t = metrics.ms_ssim_db(quality)
    if not d[order][0] <= t <= d[order][-1]:
        return float("nan")
    return float(np.exp(np.interp(t, d[order], r[order])))


def evaluate(files: list[Path], targets: list[float], model: str) -> list[dict]:
    codec = load_codec(model)
    rows = []
    for f in files:
        src = prepare(open_image(f))
        h, w = src.rgb.shape[:2]
        with torch.inference_mode():
            curve = plain_curve(codec, src)
        row = {"image": f.name, "pixels": h * w, "plain": curve, "adaptive": {}}
        for q in targets:
            row["adaptive"][str(q)] = adaptive_point(codec, src, q)
        rows.append(row)
        print(f"{f.name}: " + ", ".join(f"{q} {row['adaptive'][str(q)]['bytes']} B" for q in targets), file=sys.stderr)
    return rows


def summary(rows: list[dict], target: float) -> dict:
    """The set's figures at one target, over the images where plain rate control reaches it."""
    plain, adapt, own, equal = [], [], [], []
    for row in rows:
        curve, a = row["plain"], row["adaptive"][str(target)]
        reached = [k for k, v in enumerate(curve["ms-ssim"]) if v >= target]
        if not reached:
            continue
        p = curve["bytes"][reached[0]]
        plain.append(8 * p / row["pixels"])
        adapt.append(8 * a["bytes"] / row["pixels"])
        own.append(1 - a["bytes"] / p)
        equal.append(1 - a["bytes"] / bytes_at(curve, a["ms-ssim"]))
    if not plain:
        return {"target": target, "images": 0, "of": len(rows)}
    equal = [v for v in equal if np.isfinite(v)]
    return {"target": target, "images": len(plain), "of": len(rows), "plain_bpp": float(np.mean(plain)),
            "adaptive_bpp": float(np.mean(adapt)), "saving": 1 - float(np.sum(adapt) / np.sum(plain)),
            "median_saving": float(np.median(own)), "worst_saving": float(np.min(own)),
            "equal_quality_saving": float(np.median(equal)) if equal else float("nan")}


def table(summaries: list[dict]) -> str:
    lines = ["| Q | images reaching Q | plain `--quality Q` bpp | `--adaptive` bpp | saving (set) | median / worst image "
             "| at equal MS-SSIM (median) |", "|---|---|---|---|---|---|---|"]
    for s in summaries:
        if not s["images"]:
            lines.append(f"| {s['target']} | 0 / {s['of']} | | | | | |")
            continue
        lines.append(f"| {s['target']} | {s['images']} / {s['of']} | {s['plain_bpp']:.3f} | {s['adaptive_bpp']:.3f} | "
                     f"{100 * s['saving']:+.1f} % | {100 * s['median_saving']:+.1f} / {100 * s['worst_saving']:+.1f} % | "
                     f"{100 * s['equal_quality_saving']:+.1f} % |")
    return "\n".join(lines)



def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", help="image files or folders")
    p.add_argument("--held-back", metavar="BSDS432", help="add the held-back photographs of this bsds432 folder")
    p.add_argument("--targets", type=float, nargs="+", default=[0.9, 0.95, 0.97])
    p.add_argument("--model", default=DEFAULT_CODEC)
    p.add_argument("--limit", type=int, default=0, help="only the first N images")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("-o", "--out", help="folder for adaptive.json (every image's figures)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        files = list_images(args.images) if args.images else []
        if args.held_back:
            files += split_holdout(list_images([args.held_back]))[1]
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")
    files = files[:args.limit] if args.limit else files
    if not files:
        sys.exit("error: no images (give files or folders, or --held-back BSDS432)")
    rows = evaluate(files, args.targets, args.model)
    summaries = [summary(rows, q) for q in args.targets]
    print(f"{args.model}, {len(rows)} images, up to {MAX_ITERATIONS} iterations")
    print(table(summaries))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "adaptive.json").write_text(json.dumps({"model": args.model, "summaries": summaries,
                                                                   "images": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Measure spatially adaptive bit rates against uniform iterations on a folder of photographs.

    python scripts/eval_adaptive.py ../shared/data/kodak -o results/adaptive --example kodim23.png
    python scripts/eval_adaptive.py ../shared/data/kodak --limit 4 --thresholds 0.9 1.0 --gains 0.01 0.003

For every image: the uniform curve (one file of --max-iterations iterations, each prefix decoded) and
one adaptive file per setting (every tile stops once its local MS-SSIM reaches the threshold, or once
an iteration raised it by less than the minimum gain, as `encode --quality Q --adaptive` does for each
gain it tries with threshold Q). Every file is written and
decoded by the codec; MS-SSIM (RGB, pytorch-msssim) and PSNR are measured on the decoded images.

Reported: mean bpp / MS-SSIM / PSNR per setting; the bpp that uniform iterations need for the same
mean MS-SSIM (the uniform mean curve interpolated in MS-SSIM dB against log bpp) and the saving;
per image, the same saving on that image's own curve (median and spread); the Bjøntegaard delta
rate of the adaptive curve against the uniform one (MS-SSIM dB). With --example, the decoded image
and its iteration map side by side.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lstmcodec.coding import adaptive
from lstmcodec import api
from lstmcodec.format import container
from lstmcodec.training import data
from lstmcodec.evaluation import metrics
from lstmcodec.models import zoo
from lstmcodec.coding.codec import to_tensor
from lstmcodec.format.fileinfo import info, map_image
from lstmcodec.geometry import BLOCK
from lstmcodec.io.imageio import open_image, prepare
from lstmcodec.models.zoo import DEFAULT_CODEC


def uniform_curve(path: Path, rgb: np.ndarray, iterations: int, model: str) -> dict:
    src = prepare(open_image(path))
    full = api.encode_image(src, iterations, model).data
    fi = info(full)
    ms, ps = [], []
    for image in api.decode_progressive(full, model=None):
        out = np.asarray(image.convert("RGB"))
        ms.append(metrics.ms_ssim(out, rgb))
        ps.append(metrics.psnr(out, rgb))
    return {"bpp": fi.bpp_per_iteration, "ms-ssim": ms, "psnr": ps}


def adaptive_point(path: Path, rgb: np.ndarray, threshold: float, gain: float, iterations: int, tile: int, model: str):
    src = prepare(open_image(path))
    loaded = zoo.load_codec(model)
    h, w = rgb.shape[:2]
    with torch.inference_mode():
        x = to_tensor(src.rgb, loaded.device)
        run = adaptive.adaptive_pass(loaded, x, h, w, threshold, iterations, tile // BLOCK, gain)
    blob = adaptive.adaptive_file(loaded, src, run, tile // BLOCK)
    out = np.asarray(api.decode(blob).convert("RGB"))
    point = {"bpp": 8 * len(blob) / (w * h), "ms-ssim": metrics.ms_ssim(out, rgb), "psnr": metrics.psnr(out, rgb),
             "mean_iterations": float(run.counts.mean()), "max_iterations": int(run.counts.max()),
             "map_bytes": len(container.read(blob).iteration_map)}
    return point, blob


def uniform_bpp_at(curve_bpp, curve_ms, target_ms: float) -> float:
    """bpp that the uniform curve needs for MS-SSIM `target_ms` (linear in MS-SSIM dB against log bpp);
    nan outside the curve's range."""
    d = np.array([metrics.ms_ssim_db(v) for v in curve_ms])
    r = np.log(np.asarray(curve_bpp))
    order = np.argsort(d)
    d, r = d[order], r[order]
    t = metrics.ms_ssim_db(target_ms)
    if not d[0] <= t <= d[-1]:
        return float("nan")
    return float(np.exp(np.interp(t, d, r)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder")
    p.add_argument("--thresholds", type=float, nargs="+", default=[1.0],
                   help="tile quality targets (local MS-SSIM); 1.0: none")
    p.add_argument("--gains", type=float, nargs="*", default=[0.03, 0.015, 0.008, 0.004],
                   help="minimum gains: a tile stops once an iteration raised its local MS-SSIM by less")
    p.add_argument("--targets", type=float, nargs="*", default=[],
                   help="also run the encoder's own search (encode --quality Q --adaptive) for these Q, against "
                        "uniform --quality Q (the fewest iterations reaching Q)")
    p.add_argument("--max-iterations", type=int, default=16)
    p.add_argument("--tile", type=int, default=32, choices=[16, 32, 64, 128])
    p.add_argument("--model", default=DEFAULT_CODEC)
    p.add_argument("--limit", type=int)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--example", help="file name of the image to show with its iteration map")
    p.add_argument("--example-gain", type=float, default=0.008)
    p.add_argument("-o", "--output", help="results folder: adaptive.json, table.txt and the example")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    files = data.list_images([args.folder])[: args.limit]
    out_dir = Path(args.output) if args.output else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    per_image: dict = {}
    t0 = time.time()
    for f in files:
        rgb = np.asarray(Image.open(f).convert("RGB"))
        entry = {"uniform": uniform_curve(f, rgb, args.max_iterations, args.model), "adaptive": []}
        for thr, gain in settings(args):
            point, blob = adaptive_point(f, rgb, thr, gain, args.max_iterations, args.tile, args.model)
            entry["adaptive"].append({"threshold": thr, "gain": gain, **point})
            if out_dir and args.example == f.name and gain == args.example_gain and thr == args.thresholds[0]:
                write_example(out_dir, f.stem, blob, point)
        for q in args.targets:
            src = prepare(open_image(f))
            res, run = adaptive.encode_adaptive(zoo.load_codec(args.model), src, q, args.max_iterations, args.tile)
            out = np.asarray(api.decode(res.data).convert("RGB"))
            uni = entry["uniform"]
            k = next((i for i, v in enumerate(uni["ms-ssim"]) if v >= q), len(uni["ms-ssim"]) - 1)
            entry.setdefault("targets", []).append({
                "target": q, "bpp": 8 * len(res.data) / (rgb.shape[0] * rgb.shape[1]), "ms-ssim": metrics.ms_ssim(out, rgb),
                "psnr": metrics.psnr(out, rgb), "mean_iterations": float(run.counts.mean()),
                "uniform_iterations": k + 1, "uniform_bpp": uni["bpp"][k], "uniform_ms-ssim": uni["ms-ssim"][k]})
        per_image[f.name] = entry
        print(f"{f.name}: " + "  ".join(f"{a['threshold']}/{a['gain']}: {a['bpp']:.3f} bpp {a['ms-ssim']:.4f}" for a in entry["adaptive"])
              + f"  ({time.time() - t0:.0f} s)", file=sys.stderr)

    report = summarize(per_image, args)
    text = table(report)
    print(text)
    if out_dir:
        (out_dir / "adaptive.json").write_text(json.dumps({**report, "per_image": per_image}, indent=1))
        (out_dir / "table.txt").write_text(text + "\n")
    return 0


def settings(args) -> list[tuple[float, float]]:
    return [(t, g) for t in args.thresholds for g in args.gains]


def summarize(per_image: dict, args) -> dict:
    names = list(per_image)
    n_it = args.max_iterations
    uni = {k: np.mean([[per_image[n]["uniform"][k][i] for i in range(n_it)] for n in names], axis=0).tolist()
           for k in ("bpp", "ms-ssim", "psnr")}
    rows = []
    for j, (thr, gain) in enumerate(settings(args)):
        pts = [per_image[n]["adaptive"][j] for n in names]
        mean = {k: float(np.mean([p[k] for p in pts])) for k in ("bpp", "ms-ssim", "psnr", "mean_iterations", "map_bytes")}
        at = uniform_bpp_at(uni["bpp"], uni["ms-ssim"], mean["ms-ssim"])
        own = [1 - p["bpp"] / uniform_bpp_at(per_image[n]["uniform"]["bpp"], per_image[n]["uniform"]["ms-ssim"], p["ms-ssim"])
               for n, p in zip(names, pts)]
        own = [s for s in own if np.isfinite(s)]
        rows.append({"threshold": thr, "gain": gain, **mean, "uniform_bpp_same_ms_ssim": at, "saving": 1 - mean["bpp"] / at,
                     "per_image_saving_median": float(np.median(own)) if own else float("nan"),
                     "per_image_saving_min": float(np.min(own)) if own else float("nan"),
                     "per_image_saving_max": float(np.max(own)) if own else float("nan"),
                     "images_in_range": len(own)})
    bd = metrics.bd_rate(uni["bpp"], [metrics.ms_ssim_db(v) for v in uni["ms-ssim"]],
                         [r["bpp"] for r in rows], [metrics.ms_ssim_db(r["ms-ssim"]) for r in rows]) if rows else float("nan")
    targets = []
    for j, q in enumerate(args.targets):
        pts = [per_image[n]["targets"][j] for n in names]
        mean = {k: float(np.mean([p[k] for p in pts])) for k in pts[0] if k != "target"}
        targets.append({"target": q, **mean, "saving": 1 - mean["bpp"] / mean["uniform_bpp"],
                        "images_reaching": sum(p["ms-ssim"] >= q for p in pts),
                        "uniform_images_reaching": sum(p["uniform_ms-ssim"] >= q for p in pts)})
    return {"model": args.model, "images": len(names), "tile": args.tile, "max_iterations": n_it,
            "uniform_mean": uni, "adaptive_mean": rows, "bd_rate_ms_ssim_db": bd, "targets": targets}


def table(report: dict) -> str:
    lines = [f"{report['images']} images, model {report['model']}, tiles of {report['tile']} px, "
             f"at most {report['max_iterations']} iterations"]
    if report["adaptive_mean"]:  # the threshold x gain sweep (empty with --gains and no values)
        lines.append("threshold gain    bpp     MS-SSIM  PSNR   mean it.  uniform bpp at same MS-SSIM  saving  "
                     "per-image saving median [min, max]")
        for r in report["adaptive_mean"]:
            lines.append(f"{r['threshold']:<9} {r['gain']:<6}  {r['bpp']:.4f}  {r['ms-ssim']:.4f}   {r['psnr']:.2f}  {r['mean_iterations']:5.2f}     "
                         f"{r['uniform_bpp_same_ms_ssim']:.4f}                       {100 * r['saving']:+.1f}%   "
                         f"{100 * r['per_image_saving_median']:+.1f}% [{100 * r['per_image_saving_min']:+.1f}, "
                         f"{100 * r['per_image_saving_max']:+.1f}] ({r['images_in_range']} images)")
        lines.append(f"BD-rate of adaptive against uniform (MS-SSIM dB): {report['bd_rate_ms_ssim_db']:+.1f}%")
    for t in report["targets"]:
        lines.append(f"--quality {t['target']} --adaptive: {t['bpp']:.4f} bpp, MS-SSIM {t['ms-ssim']:.4f} "
                     f"({t['images_reaching']} images reach it), mean {t['mean_iterations']:.2f} iterations per tile; "
                     f"uniform --quality {t['target']}: {t['uniform_bpp']:.4f} bpp, MS-SSIM {t['uniform_ms-ssim']:.4f} "
                     f"({t['uniform_images_reaching']} reach it), mean {t['uniform_iterations']:.2f} iterations; "
                     f"saving {100 * t['saving']:+.1f}%")
    u = report["uniform_mean"]
    lines.append("uniform: " + "  ".join(f"i{k + 1} {b:.3f}/{m:.4f}" for k, (b, m) in enumerate(zip(u["bpp"], u["ms-ssim"]))))
    return "\n".join(lines)


def write_example(out_dir: Path, stem: str, blob: bytes, point: dict) -> None:
    decoded = api.decode(blob).convert("RGB")
    iteration_map = map_image(info(blob)).convert("RGB")
    both = Image.new("RGB", (decoded.width * 2 + 8, decoded.height), "white")
    both.paste(decoded, (0, 0))
    both.paste(iteration_map, (decoded.width + 8, 0))
    both.save(out_dir / f"{stem}-adaptive.png")
    (out_dir / f"{stem}-adaptive.lstm").write_bytes(blob)
    (out_dir / f"{stem}-adaptive.json").write_text(json.dumps(point, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())

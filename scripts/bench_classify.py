#!/usr/bin/env python3
"""Classifier accuracy under compression: CIFAR-10 test images through lstmcodec (each iteration count),
JPEG and WebP, classified by a bundled or given classifier; accuracy against bits per pixel.

    python scripts/bench_classify.py ../shared/data/cifar10-png.zip --limit 1000 -o results/classify-cifar10.json --plot results/classify-cifar10.png

bpp counts whole files for every codec. On 32x32 images headers weigh a lot (a JPEG's tables alone
are ~300 bytes), so lstmcodec's bit-stream-only rate (its iteration chunks) is reported beside it.
"""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lstmcodec import api
from lstmcodec.training import data
from lstmcodec.format.fileinfo import info
from lstmcodec.tasks.classifier import get_classifier
from lstmcodec.io.imageio import prepare
from lstmcodec.nets import classify
from lstmcodec.models.zoo import DEFAULT_CODEC

QUALITIES = {"jpeg": [5, 10, 20, 30, 50, 70, 90], "webp": [0, 5, 10, 20, 30, 50, 70, 90]}


def accuracy(net, images: np.ndarray, labels: np.ndarray) -> float:
    """images: N x H x W x 3 uint8."""
    return classify.accuracy(net.model, torch.from_numpy(images).permute(0, 3, 1, 2), torch.from_numpy(labels), net.config)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cifar", help="CIFAR-10: cifar-10-batches-py, an image folder or the zip")
    p.add_argument("--model", default="cifar10")
    p.add_argument("--codec", default=DEFAULT_CODEC)
    p.add_argument("--limit", type=int, default=1000, help="test images (every k-th, all classes)")
    p.add_argument("--iterations", type=int, default=8, help="lstmcodec: 1..N iterations")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("-o", "--output")
    p.add_argument("--plot")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    test = data.load_cifar10(args.cifar, "test")
    idx = np.linspace(0, len(test) - 1, min(args.limit, len(test))).astype(int)
    images = test.images[idx].permute(0, 2, 3, 1).numpy()
    labels = test.labels[idx].numpy()
    net = get_classifier(args.model)
    px = images.shape[1] * images.shape[2]
    res: dict = {"classifier": net.name, "codec": args.codec, "images": len(images),
                 "original": accuracy(net, images, labels), "lstmcodec": [], "jpeg": [], "webp": []}
    print(f"uncompressed: accuracy {res['original']:.4f} on {len(images)} images", flush=True)

    n = args.iterations
    decoded = np.zeros((n, *images.shape), np.uint8)
    file_bits, stream_bits = np.zeros(n), np.zeros(n)
    for j, rgb in enumerate(images):
        blob = api.encode_image(prepare(Image.fromarray(rgb)), n, args.codec).data
        fi = info(blob)
        file_bits += np.array(fi.bpp_per_iteration[:n]) * px
        stream_bits += np.cumsum(fi.iteration_bytes[:n]) * 8
        for k, im in enumerate(api.decode_progressive(blob)):
            decoded[k, j] = np.asarray(im.convert("RGB"))
    for k in range(n):
        row = {"iterations": k + 1, "bpp": file_bits[k] / px / len(images), "stream_bpp": stream_bits[k] / px / len(images),
               "accuracy": accuracy(net, decoded[k], labels)}
        res["lstmcodec"].append(row)
        print(f"lstmcodec -i {k + 1}: {row['bpp']:.3f} bpp (stream {row['stream_bpp']:.3f}) accuracy {row['accuracy']:.4f}", flush=True)

    for name, fmt in (("jpeg", "JPEG"), ("webp", "WEBP")):
        for q in QUALITIES[name]:
            out, bits = np.zeros_like(images), 0
            for j, rgb in enumerate(images):
                buf = io.BytesIO()
                Image.fromarray(rgb).save(buf, format=fmt, quality=q)
                bits += 8 * len(buf.getvalue())
                with Image.open(buf) as d:
                    out[j] = np.asarray(d.convert("RGB"))
            row = {"quality": q, "bpp": bits / px / len(images), "accuracy": accuracy(net, out, labels)}
            res[name].append(row)
            print(f"{name} q{q}: {row['bpp']:.3f} bpp accuracy {row['accuracy']:.4f}", flush=True)

    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(res, indent=2) + "\n")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        for key, rows in (("lstmcodec (file)", res["lstmcodec"]), ("JPEG", res["jpeg"]), ("WebP", res["webp"])):
            ax.plot([r["bpp"] for r in rows], [r["accuracy"] for r in rows], "o-", label=key)
        ax.plot([r["stream_bpp"] for r in res["lstmcodec"]], [r["accuracy"] for r in res["lstmcodec"]], "o--",
                label="lstmcodec (bit stream only)")
        ax.axhline(res["original"], color="gray", ls=":", label="uncompressed")
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(f"{net.name} test accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

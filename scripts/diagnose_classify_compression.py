#!/usr/bin/env python3
"""Why lstmcodec-compressed CIFAR-10 images classify badly: PSNR and colour bias of the decoded images,
the classifier's accuracy and predicted-class histogram on originals and decodes, and a 2x bilinear blur
as a codec-free reference for how the classifier copes with lost detail.

    python scripts/diagnose_classify_compression.py ../shared/data/cifar10-png.zip --images 60 --iterations 8
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

from lstmcodec import api
from lstmcodec.training import data
from lstmcodec.tasks.classifier import get_classifier
from lstmcodec.nets import classify
from lstmcodec.models.zoo import DEFAULT_CODEC


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cifar", help="CIFAR-10: cifar-10-batches-py, an image folder or the zip")
    p.add_argument("--images", type=int, default=60, help="test images (every k-th)")
    p.add_argument("--iterations", type=int, default=8)
    p.add_argument("--codec", default=DEFAULT_CODEC)
    args = p.parse_args()
    test = data.load_cifar10(args.cifar, "test")
    idx = np.linspace(0, len(test) - 1, args.images).astype(int)
    originals = test.images[idx].permute(0, 2, 3, 1).numpy()
    labels = test.labels[idx].numpy()
    net = get_classifier("cifar10")

    decoded = np.stack([np.asarray(api.decode(api.encode(Image.fromarray(rgb), args.iterations, args.codec)).convert("RGB"))
                        for rgb in originals])
    blurred = np.stack([np.asarray(Image.fromarray(rgb).resize((16, 16), Image.BILINEAR).resize((32, 32), Image.BILINEAR))
                        for rgb in originals])
    for name, images in (("original", originals), (f"lstmcodec -i {args.iterations}", decoded), ("2x bilinear blur", blurred)):
        err = images.astype(np.float64) - originals
        mse = np.maximum((err ** 2).mean(axis=(1, 2, 3)), 1e-10)
        pred = classify.predict(net.model, torch.from_numpy(images).permute(0, 3, 1, 2), net.config).numpy()
        psnr = "" if name == "original" else f" PSNR {np.mean(10 * np.log10(255 ** 2 / mse)):.2f} dB, bias {np.round(err.mean((0, 1, 2)), 2)};"
        print(f"{name}:{psnr} accuracy {np.mean(pred == labels):.3f}; predicted classes {np.bincount(pred, minlength=10).tolist()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

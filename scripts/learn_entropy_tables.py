#!/usr/bin/env python3
"""Learn the context tables of the entropy coder (method 2 in docs/format.md) for a codec's weights.

    python scripts/learn_entropy_tables.py ../shared/data/bsds432 --model weights/lstm-w25-ft.pt --images 100 --out weights/lstm-w25-ft.pt
    python scripts/register_weights.py weights/lstm-w25-ft.pt

Codes training images (the training split of the folders: every 20th file is held back) with the
model at 16 iterations, counts every context, and writes the weights file again with the table in it.
The table is part of the weights' fingerprint: files coded before it was added no longer match.
Then it reports the savings against raw bits on the held-back images, with and without the table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lstmcodec import data, entropy  # noqa: E402
from lstmcodec.codec import _bits_to_plane, _to_tensor  # noqa: E402
from lstmcodec.imageio import open_image, prepare  # noqa: E402
from lstmcodec.weights import export_codec, load_codec  # noqa: E402


def planes_of(model, path: Path, iterations: int = 16) -> np.ndarray:
    src = prepare(open_image(path))
    x = _to_tensor(src.rgb, torch.device("cpu"))
    with torch.inference_mode():
        return np.stack([_bits_to_plane(b) for b, _ in model.iterate(x, iterations, final_reconstruction=False)])


def savings(prior, images: list[np.ndarray], counts=(2, 4, 8, 16)) -> dict[int, float]:
    out = {}
    for n in counts:
        coded = raw = 0
        for planes in images:
            coder = entropy.PlaneCoder(prior, planes.shape[1])
            coded += sum(len(coder.encode(p)) for p in planes[:n])
            raw += planes[:n].size / 8
        out[n] = 1 - coded / raw
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="+", help="training image folders")
    p.add_argument("--model", required=True, help="codec weights file")
    p.add_argument("--images", type=int, default=100, help="training images to count (spread over the split)")
    p.add_argument("--k", type=int, default=entropy.K, choices=range(1, entropy.MAX_K + 1), metavar="K",
                   help=f"previous channels in a bit's context (1..{entropy.MAX_K}); the table has 5 x 32 x 2^(K+1) int16 entries")
    p.add_argument("--out", required=True, help="weights file to write (may be --model itself)")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    codec = load_codec(args.model)
    train, held = data.split_holdout(data.list_images(args.data))
    step = max(1, len(train) // args.images)
    chosen = train[::step][: args.images]
    planes = []
    for k, f in enumerate(chosen, 1):
        planes.append(planes_of(codec.model, f))
        print(f"\r{k}/{len(chosen)} training images coded", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    prior = entropy.learn_prior(planes, args.k)
    fp = export_codec(codec.model, args.out, codec.name, {**codec.meta, "entropy_tables": {
        "images": len(chosen), "folders": [str(d) for d in args.data], "k": args.k, "buckets": entropy.BUCKETS,
        "prior_weight": entropy.PRIOR_WEIGHT}}, entropy_prior=prior)
    print(f"wrote {args.out} (fingerprint {fp.hex()})")
    val = [planes_of(codec.model, f) for f in held[:8]]
    before, after = savings(None, val), savings(prior, val)
    for n in before:
        print(f"held-back images, {n:2d} iterations: saving against raw bits {before[n]:.1%} -> {after[n]:.1%} with the learned tables")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

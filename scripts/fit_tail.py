#!/usr/bin/env python3
"""Fit a codec's linear tail (lstmcodec/nets/tail.py): the iterations from --start on, coded by linear stages.

    python scripts/fit_tail.py ../shared/data/bsds432 --model fast --start 12 --stages 12 --out weights/fast.pt

Runs the model's networks for --start iterations on the training split of the folders (every 20th file is held
back), collects the residual's 16x16x3 blocks and the activity class of each (the RMS of the high-pass of the
reconstruction's luma, cut at the quantiles of the training blocks into --classes classes), then fits stage after
stage in closed form: the 32 principal components of the remaining residual blocks, and for each class and
component the mean absolute projection; each stage's decode is applied before the next is fitted. The weights
file is written again with the tail in it: its networks and entropy model are unchanged, so files written
without the tail still decode (they record the weights' fingerprint without it). Last it reports what each
stage adds on the held-back images, beside what the networks' own iterations add there.
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from lstmcodec.training import data
from lstmcodec.models import weights, zoo
from lstmcodec.coding.tensors import to_tensor
from lstmcodec.errors import CodecError
from lstmcodec.geometry import BLOCK
from lstmcodec.io.imageio import open_image, prepare
from lstmcodec.nets.tail import LinearTail, activity, to_blocks


def residuals(codec, files, start: int, per_image: int | None, seed: int, compare: int = 0):
    """Residual blocks (n x 768), activities (n) after `start` network iterations; with compare, also the
    network's own residual energy after start .. start + compare iterations (summed over the images)."""
    g = torch.Generator().manual_seed(seed)
    blocks, acts, own = [], [], np.zeros(compare + 1)
    for f in files:
        rgb = prepare(open_image(f)).rgb
        h, w = (rgb.shape[0] // BLOCK) * BLOCK, (rgb.shape[1] // BLOCK) * BLOCK
        x = to_tensor(rgb[:h, :w], codec.device)
        with torch.inference_mode():
            xs = [x_hat for _, x_hat in codec.iterate(x, start + compare)]
        x_hat = xs[start - 1]
        r, a = to_blocks(x - x_hat).reshape(-1, 3 * BLOCK * BLOCK), activity(x_hat).reshape(-1)
        if per_image is not None and per_image < len(r):
            keep = torch.randperm(len(r), generator=g)[:per_image]
            r, a = r[keep], a[keep]
        blocks.append(r.float().cpu())
        acts.append(a.cpu())
        if compare:
            own += [float(((x - xs[t]) ** 2).sum()) for t in range(start - 1, start + compare)]
    return torch.cat(blocks), torch.cat(acts), own


def after_stage(r: torch.Tensor, p: torch.Tensor, m: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """What a stage leaves of residual blocks r (n x 768, float64): the signs of their projections on p (bits x 768)
    times their class's magnitudes m (classes x bits), subtracted, as LinearTail.encode / decode do on images."""
    return r - (torch.where(r @ p.T >= 0, 1.0, -1.0).double() * m[cls]) @ p


def fit(r: torch.Tensor, act: torch.Tensor, start: int, stages: int, classes: int, bits: int) -> LinearTail:
    """Stage after stage: the principal directions of the remaining residual blocks and each class's mean absolute
    projection on them; each stage's decode is applied before the next is fitted."""
    edges = torch.quantile(act, torch.arange(1, classes, dtype=torch.float64) / classes)
    edges = torch.unique(edges)   # strictly increasing
    cls = torch.bucketize(act, edges, right=True)
    basis, magnitude = [], []
    r = r.double()
    for s in range(stages):
        _, vecs = torch.linalg.eigh(r.T @ r / len(r))
        p = vecs[:, -bits:].flip(1).T                                      # bits x 768, largest variance first
        p = p * torch.where(p.gather(1, p.abs().argmax(1, keepdim=True)) < 0, -1.0, 1.0).double()  # a fixed sign
        p = p.half().double()
        c = r @ p.T
        m = torch.stack([c[cls == k].abs().mean(0) if bool((cls == k).any()) else torch.zeros(bits, dtype=c.dtype)
                         for k in range(len(edges) + 1)]).clamp(max=1).half().double()   # ≤ 1: decode is exact
        r = after_stage(r, p, m, cls)
        basis.append(p)
        magnitude.append(m)
        print(f"  stage {s + 1}: training residual RMS {math.sqrt(float((r ** 2).mean())):.5f}", flush=True)
    return LinearTail(start, torch.stack(basis).float(), edges, torch.stack(magnitude).float())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="+", help="training image folders")
    p.add_argument("--model", required=True, help="codec weights file (or bundled name)")
    p.add_argument("--start", type=int, default=8, help="iterations the networks keep; the tail codes the rest")
    p.add_argument("--stages", type=int, default=8, help="linear stages (iterations start+1 .. start+stages)")
    p.add_argument("--classes", type=int, default=8, help="activity classes of the magnitudes")
    p.add_argument("--images", type=int, default=0, help="training images used (spread over the split; 0: all)")
    p.add_argument("--blocks", type=int, default=300, help="random blocks kept per training image")
    p.add_argument("--check-images", type=int, default=20, help="held-back images of the report")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", required=True, help="the weights file to write (the model's, with the tail)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        codec = zoo.load_codec(args.model, precision="fp32")
        path, _ = zoo.resolve("codec", zoo.canonical("codec", args.model))
        blob = weights.read(path, "codec")
    except (CodecError, ValueError) as e:
        raise SystemExit(f"error: {e}")
    codec.set_tail(None)   # the residuals of the networks alone
    train, held = data.split_holdout(data.list_images(args.data))
    if args.images:
        train = train[::max(1, len(train) // args.images)][:args.images]
    print(f"{len(train)} training images, {args.start} network iterations, {args.stages} stages", flush=True)
    r, act, _ = residuals(codec, train, args.start, args.blocks, args.seed)
    tail = fit(r, act, args.start, args.stages, args.classes, codec.config.bits)
    blob["tail"] = tail.arrays()
    blob.setdefault("meta", {})["tail"] = {"start": args.start, "stages": args.stages, "classes": args.classes,
                                           "images": len(train), "blocks_per_image": args.blocks, "seed": args.seed}
    weights.save(blob, args.out)
    print(f"wrote {args.out}")

    # what the stages add on held-back images, beside the networks' own next iterations
    checked = held[:args.check_images]
    if not checked:
        return 0
    rh, acth, own = residuals(codec, checked, args.start, None, 0, compare=args.stages)
    cls = torch.bucketize(acth.double(), tail.edges, right=True)
    e0 = float((rh.double() ** 2).sum())
    rh = rh.double()
    print(f"held-back images ({len(checked)}), dB of residual energy removed after the first {args.start} "
          "iterations: networks | linear tail")
    for s in range(tail.stages):
        rh = after_stage(rh, tail.basis[s].double(), tail.magnitude[s].double(), cls)
        print(f"  +{s + 1:2d}: {10 * math.log10(own[0] / own[s + 1]):5.2f} | "
              f"{10 * math.log10(e0 / float((rh ** 2).sum())):5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

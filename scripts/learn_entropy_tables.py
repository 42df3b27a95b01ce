#!/usr/bin/env python3
"""Learn the context table and the mixer of the entropy coder (methods 2 and 3 in docs/format.md) for a codec's weights.

    python scripts/learn_entropy_tables.py ../shared/data/bsds432 --model runs/x/raw.pt --images 411 --k 14 --mixer-images 82 --out weights/NAME.pt
    python scripts/register_weights.py weights/NAME.pt

Codes training images (the training split of the folders: every 20th file is held back) with the
model at 16 iterations and counts every context into the table (or, with --keep-table, keeps the
model's own). With --mixer-images M, the mixer, a small network that corrects the table's
probabilities (lstmcodec.format.mixer), is fitted with torch on M of the coded images (spread over them),
against a table counted on the others (lstmcodec.training.entropy_fit). Then it writes the weights file again with
the table and the mixer in it. A new table changes the weights' fingerprint: files coded before no longer
match. Last it reports the savings against raw bits on the held-back images, without the table, with it,
and with the mixer.
"""
from __future__ import annotations

import argparse

import torch

from lstmcodec.training import data, entropy_fit, runs as training
from lstmcodec.format import tables
from lstmcodec.models import zoo
from lstmcodec.errors import CodecError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="+", help="training image folders")
    p.add_argument("--model", required=True, help="codec weights file (or bundled name)")
    p.add_argument("--images", type=int, default=100, help="training images to count (spread over the split)")
    p.add_argument("--k", type=int, default=tables.K, choices=range(1, tables.MAX_K + 1), metavar="K",
                   help=f"previous channels in a bit's context (1..{tables.MAX_K}); the table has 5 x 32 x 2^(K+1) entries")
    p.add_argument("--table-bytes", type=int, default=1, choices=(1, 2),
                   help="bytes per table entry in the weights file: 1 (a probability of 256 levels, evenly spaced in "
                        "logit: half the size for <0.0002 bits per bit) or 2 (int16)")
    p.add_argument("--keep-table", action="store_true", help="keep the model's own table and only fit the mixer")
    p.add_argument("--mixer-images", type=int, default=0, metavar="M",
                   help="fit the mixer (method 3) on M of the --images, against a table counted on the others; 0: no mixer")
    p.add_argument("--mixer-hidden", type=int, default=16, help="the mixer's hidden units (1..64)")
    p.add_argument("--mixer-steps", type=int, default=4000)
    p.add_argument("--name", help="the model name to record (default: the model's own)")
    p.add_argument("--out", required=True, help="weights file to write (may be --model itself)")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    if args.images < 1:
        p.exit(1, "error: --images must be at least 1\n")
    if not 0 <= args.mixer_images < args.images:
        p.exit(1, f"error: --mixer-images must be from 0 to --images - 1 ({args.images - 1}): the mixer is fitted "
                  "against a table counted on the other images\n")
    if not 1 <= args.mixer_hidden <= 64:
        p.exit(1, "error: --mixer-hidden must be from 1 to 64\n")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        codec = zoo.load_codec(args.model)
        train, held = data.split_holdout(data.list_images(args.data))
    except (CodecError, FileNotFoundError) as e:
        p.exit(1, f"error: {e}\n")
    chosen = train[::max(1, len(train) // args.images)][: args.images]
    planes = []
    for k, f in enumerate(chosen, 1):
        planes.append(entropy_fit.planes_of(codec, f))
        entropy_fit.progress(k, len(chosen))
    if args.keep_table:
        if codec.prior is None:
            p.error(f"{args.model} has no table to keep")
        prior, k = codec.prior, tables.table_k(codec.prior)
        tables_meta = codec.meta.get("entropy_tables", {})
        table_bytes = tables_meta.get("table_bytes", 2)
        mixer = entropy_fit.learn(planes, k, table_bytes, args.mixer_images, args.mixer_hidden, args.mixer_steps)[1] \
            if args.mixer_images else None
    else:
        k, table_bytes = args.k, args.table_bytes
        prior, mixer = entropy_fit.learn(planes, k, table_bytes, args.mixer_images, args.mixer_hidden, args.mixer_steps)
        tables_meta = {"images": len(chosen), "folders": [str(d) for d in args.data], "k": k,
                       "buckets": tables.BUCKETS, "table_bytes": table_bytes}
    if mixer is not None:
        tables_meta = {**tables_meta, "mixer": {"images": args.mixer_images, "hidden": args.mixer_hidden,
                                                "steps": args.mixer_steps}}
    fp = training.export_codec(codec, args.out, args.name or codec.name, {**codec.meta, "entropy_tables": tables_meta},
                               entropy_prior=prior, entropy_mixer=mixer, table_bytes=table_bytes)
    print(f"wrote {args.out} (fingerprint {fp.hex()})")
    val = [entropy_fit.planes_of(codec, f) for f in held[:8]]
    if not val:
        print("no held-back images (every 20th of the folders) to measure the savings on")
        return 0
    before, after = entropy_fit.savings(None, val), entropy_fit.savings(prior, val)
    mixed = entropy_fit.savings(prior, val, mixer=mixer) if mixer else None
    for n in before:
        print(f"held-back images, {n:2d} iterations: saving against raw bits {before[n]:.1%} -> {after[n]:.1%} with the "
              "learned tables" + (f" -> {mixed[n]:.1%} with the mixer" if mixed else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

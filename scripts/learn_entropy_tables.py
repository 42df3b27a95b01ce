#!/usr/bin/env python3
"""Learn the context tables and the mixer of the entropy coder (methods 2 and 3 in docs/format.md) for a codec's weights.

    python scripts/learn_entropy_tables.py ../shared/data/bsds432 --model weights/lstm-w25-ft.pt --images 100 --out weights/lstm-w25-ft.pt
    python scripts/learn_entropy_tables.py ../shared/data/bsds432 --model raw.pt --images 411 --k 14 --mixer-images 82 --out weights/NAME.pt
    python scripts/register_weights.py weights/lstm-w25-ft.pt

Codes training images (the training split of the folders: every 20th file is held back) with the
model at 16 iterations and counts every context into the table (or, with --keep-table, keeps the
model's own). With --mixer-images M, the mixer, a small network that corrects the table's
probabilities (entropy.Mixer), is fitted with torch on M of the coded images (spread over them),
against a table counted on the others: it must see the table's probabilities on images the table
has not counted, as on the images users code. Then it writes the weights file again with the table
and the mixer in it. A new table changes the weights' fingerprint (files coded before no longer
match); a mixer added to a kept table does not stop those files from decoding (weights.LoadedCodec.
base_fingerprint). Last it reports the savings against raw bits on the held-back images, without
the table, with it, and with the mixer.
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


def savings(prior, images: list[np.ndarray], counts=(2, 4, 8, 16), mixer=None) -> dict[int, float]:
    out = {}
    for n in counts:
        coded = raw = 0
        for planes in images:
            coder = entropy.PlaneCoder(prior, planes.shape[1], mixer)
            coded += sum(len(coder.encode(p)) for p in planes[:n])
            raw += planes[:n].size / 8
        out[n] = 1 - coded / raw
    return out


def mixer_rows(planes: np.ndarray, prior: np.ndarray, stretch: np.ndarray) -> tuple[np.ndarray, ...]:
    """The mixer's training rows of one image (T x C x H x W planes): targets, groups, table logits
    (entropy.LOGIT_ONE units) and the 63 input bits (entropy.Mixer's order)."""
    k = entropy.table_k(prior)
    T, C = planes.shape[:2]
    planes = planes.reshape(T, C, -1)
    ys, gs, ss, xs = [], [], [], []
    prev = np.zeros_like(planes[0])
    channel = np.arange(C).reshape(-1, 1)
    for t, bits in enumerate(planes):
        bucket = entropy.iteration_bucket(t)
        pattern = entropy._patterns(bits, k)
        table_p = prior[bucket][channel, prev, pattern]
        x = np.zeros((C, bits.shape[1], 63), np.uint8)
        for j in range(1, min(C, 32)):
            x[j:, :, j - 1] = bits[:-j]
        x[:, :, 31:] = prev.T[None]
        ys.append(bits.ravel())
        gs.append(np.broadcast_to(bucket * C + channel, bits.shape).ravel())
        ss.append(stretch[table_p].ravel())
        xs.append(x.reshape(-1, 63))
        prev = bits
    return tuple(np.concatenate(a) for a in (ys, gs, ss, xs))


def fit_mixer(images: list[np.ndarray], prior: np.ndarray, hidden: int, steps: int, seed: int = 0) -> entropy.Mixer:
    """Fit the mixer (float, torch) on the planes of images the table has not counted, then round it to
    the integers of entropy.Mixer. Every step takes 512 random rows of each (bucket, channel) group."""
    stretch, squash = entropy.logit_tables()
    rows = [mixer_rows(p, prior, stretch.astype(np.int64)) for p in images]
    y, g, s, x = (torch.from_numpy(np.concatenate([r[i] for r in rows])) for i in range(4))
    order = torch.argsort(g, stable=True)
    y, g, s, x = y[order], g[order], s[order].float() / entropy.LOGIT_ONE, x[order]
    groups = entropy.BUCKETS * images[0].shape[1]
    start = torch.searchsorted(g, torch.arange(groups + 1, dtype=g.dtype))
    size = start[1:] - start[:-1]
    live = torch.nonzero(size).ravel()
    gen = torch.Generator().manual_seed(seed)
    w1 = (torch.randn(groups, entropy.MIXER_INPUTS, hidden, generator=gen) * 0.1).requires_grad_()
    b1 = torch.zeros(groups, hidden, requires_grad=True)
    w2 = torch.zeros(groups, hidden + 2)
    w2[:, hidden] = 1.0                   # start from the table's own probability
    w2.requires_grad_()
    opt = torch.optim.Adam([w1, b1, w2], lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=3e-4)
    for step in range(1, steps + 1):
        r = (torch.rand(len(live), 512, generator=gen) * size[live, None]).long() + start[live, None]
        inputs = torch.cat([x[r].float(), s[r][..., None]], 2)
        h = torch.relu(torch.bmm(inputs, w1[live]) + b1[live][:, None])
        logit = (h * w2[live, None, :hidden]).sum(2) + w2[live, None, hidden] * s[r] + w2[live, None, hidden + 1]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y[r].float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0 or step == steps:
            print(f"mixer step {step}/{steps}: {loss.item() / np.log(2):.4f} bits per bit", file=sys.stderr, flush=True)
    q = lambda t: np.clip(np.round(t.detach().numpy() * 256), -32767, 32767).astype(np.int16)  # noqa: E731
    return entropy.Mixer.from_arrays({"w1": q(w1), "b1": q(b1), "w2": q(w2), "stretch": stretch, "squash": squash},
                                     images[0].shape[1])


def stored(prior: np.ndarray, table_bytes: int) -> np.ndarray:
    """The table as the weights file will give it back to the coder (rounded to the one-byte levels if table_bytes is 1)."""
    if table_bytes == 2:
        return prior
    levels = entropy.prior_levels()
    return entropy.unpack_prior(entropy.pack_prior(prior, levels), levels)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="+", help="training image folders")
    p.add_argument("--model", required=True, help="codec weights file")
    p.add_argument("--images", type=int, default=100, help="training images to count (spread over the split)")
    p.add_argument("--k", type=int, default=entropy.K, choices=range(1, entropy.MAX_K + 1), metavar="K",
                   help=f"previous channels in a bit's context (1..{entropy.MAX_K}); the table has 5 x 32 x 2^(K+1) entries")
    p.add_argument("--table-bytes", type=int, default=1, choices=(1, 2),
                   help="bytes per table entry in the weights file: 1 (a probability of 256 levels, evenly spaced in "
                        "logit: half the size for <0.0002 bits per bit) or 2 (int16, as tables were before 2026-12-01)")
    p.add_argument("--keep-table", action="store_true",
                   help="keep the model's own table (files coded with it keep decoding) and only fit the mixer")
    p.add_argument("--mixer-images", type=int, default=0, metavar="M",
                   help="fit the mixer (method 3) on M of the --images, against a table counted on the others; 0: no mixer")
    p.add_argument("--mixer-hidden", type=int, default=16, help="the mixer's hidden units (1..64)")
    p.add_argument("--mixer-steps", type=int, default=4000)
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
    if args.keep_table:
        if codec.entropy_prior is None:
            p.error(f"{args.model} has no table to keep")
        prior, k = codec.entropy_prior, entropy.table_k(codec.entropy_prior)
        tables_meta = codec.meta.get("entropy_tables", {})
        table_bytes = tables_meta.get("table_bytes", 2)   # stored as it was, so its files keep decoding
    else:
        prior, k, table_bytes = stored(entropy.learn_prior(planes, args.k), args.table_bytes), args.k, args.table_bytes
        tables_meta = {"images": len(chosen), "folders": [str(d) for d in args.data], "k": k,
                       "buckets": entropy.BUCKETS, "prior_weight": entropy.PRIOR_WEIGHT, "table_bytes": table_bytes}
    mixer = None
    if args.mixer_images:
        held_out = {i * len(planes) // args.mixer_images for i in range(args.mixer_images)}
        # the mixer learns to correct a table that has not seen its images (it is as good with the full table)
        unseen = stored(entropy.learn_prior([q for i, q in enumerate(planes) if i not in held_out], k), table_bytes)
        mixer = fit_mixer([planes[i] for i in sorted(held_out)], unseen, args.mixer_hidden, args.mixer_steps)
        tables_meta = {**tables_meta, "mixer": {"images": len(held_out), "hidden": args.mixer_hidden,
                                                "steps": args.mixer_steps, "folders": [str(d) for d in args.data]}}
    fp = export_codec(codec.model, args.out, codec.name, {**codec.meta, "entropy_tables": tables_meta},
                      entropy_prior=prior, entropy_mixer=mixer, table_bytes=table_bytes)
    print(f"wrote {args.out} (fingerprint {fp.hex()})")
    val = [planes_of(codec.model, f) for f in held[:8]]
    before, after = savings(None, val), savings(prior, val)
    mixed = savings(prior, val, mixer=mixer) if mixer else None
    for n in before:
        print(f"held-back images, {n:2d} iterations: saving against raw bits {before[n]:.1%} -> {after[n]:.1%} with the learned tables"
              + (f" -> {mixed[n]:.1%} with the mixer" if mixed else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

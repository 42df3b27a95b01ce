"""Learning a codec's entropy model: the context table counted over the bit planes of training images, and the
mixer (method 3) fitted with torch on images the table has not counted, then rounded to its integers.

scripts/learn_entropy_tables.py is the command; the accelerator job uses the same functions.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lstmcodec.format import tables
from lstmcodec.coding.codec import Codec
from lstmcodec.coding.tensors import bits_to_plane, to_tensor
from lstmcodec.format.entropy import PlaneCoder
from lstmcodec.io.imageio import open_image, prepare
from lstmcodec.format.mixer import LOGIT_ONE, Mixer, logit_tables, mixer_inputs


def planes_of(codec: Codec, path: Path, iterations: int = 16) -> np.ndarray:
    """The T x C x H x W bit planes (0/1) that `codec` gives an image file."""
    src = prepare(open_image(path))
    x = to_tensor(src.rgb, codec.device)
    with torch.inference_mode():
        return np.stack([bits_to_plane(b) for b, _ in codec.iterate(x, iterations, decode_last=False)])


def savings(prior, images: Sequence[np.ndarray], counts=(2, 4, 8, 16), mixer=None) -> dict[int, float]:
    """The fraction of raw bits the coder saves on `images` (planes) for the first n iterations, n in `counts`."""
    out = {}
    for n in counts:
        coded = raw = 0
        for planes in images:
            coder = PlaneCoder(prior, planes.shape[1], mixer)
            coded += sum(len(coder.encode(p)) for p in planes[:n])
            raw += planes[:n].size / 8
        out[n] = 1 - coded / raw
    return out


def mixer_rows(planes: np.ndarray, prior: np.ndarray, stretch: np.ndarray) -> tuple[np.ndarray, ...]:
    """The mixer's training rows of one image (T x C x H x W planes): targets, groups, table logits
    (LOGIT_ONE units) and the 2C - 1 input bits (Mixer's order)."""
    k = tables.table_k(prior)
    T, C = planes.shape[:2]
    planes = planes.reshape(T, C, -1)
    ys, gs, ss, xs = [], [], [], []
    prev = np.zeros_like(planes[0])
    channel = np.arange(C).reshape(-1, 1)
    for t, bits in enumerate(planes):
        bucket = tables.iteration_bucket(t)
        table_p = prior[bucket][channel, prev, tables.patterns(bits, k)]
        x = np.zeros((C, bits.shape[1], 2 * C - 1), np.uint8)
        for j in range(1, C):
            x[j:, :, j - 1] = bits[:-j]
        x[:, :, C - 1:] = prev.T[None]
        ys.append(bits.ravel())
        gs.append(np.broadcast_to(bucket * C + channel, bits.shape).ravel())
        ss.append(stretch[table_p].ravel())
        xs.append(x.reshape(-1, 2 * C - 1))
        prev = bits
    return tuple(np.concatenate(a) for a in (ys, gs, ss, xs))


def fit_mixer(images: list[np.ndarray], prior: np.ndarray, hidden: int, steps: int, seed: int = 0,
              log=print) -> Mixer:
    """Fit the mixer (float, torch) on the planes of images the table has not counted, then round it to
    the integers of Mixer. Every step takes 512 random rows of each (bucket, channel) group."""
    stretch, squash = logit_tables()
    channels = images[0].shape[1]
    rows = [mixer_rows(p, prior, stretch.astype(np.int64)) for p in images]
    y, g, s, x = (torch.from_numpy(np.concatenate([r[i] for r in rows])) for i in range(4))
    order = torch.argsort(g, stable=True)
    y, g, s, x = y[order], g[order], s[order].float() / LOGIT_ONE, x[order]
    groups = tables.BUCKETS * channels
    start = torch.searchsorted(g, torch.arange(groups + 1, dtype=g.dtype))
    size = start[1:] - start[:-1]
    live = torch.nonzero(size).ravel()
    gen = torch.Generator().manual_seed(seed)
    w1 = (torch.randn(groups, mixer_inputs(channels), hidden, generator=gen) * 0.1).requires_grad_()
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
            log(f"mixer step {step}/{steps}: {loss.item() / np.log(2):.4f} bits per bit")
    q = lambda t: np.clip(np.round(t.detach().numpy() * 256), -32767, 32767).astype(np.int16)  # noqa: E731
    return Mixer.from_arrays({"w1": q(w1), "b1": q(b1), "w2": q(w2), "stretch": stretch, "squash": squash}, channels)


def learn(planes: list[np.ndarray], k: int, table_bytes: int = 1, mixer_images: int = 0, mixer_hidden: int = 16,
          mixer_steps: int = 4000, log=print) -> tuple[np.ndarray, Mixer | None]:
    """The table (as a weights file of `table_bytes` per entry will give it back) counted on all `planes`, and with
    mixer_images M, a mixer fitted on M of them (spread over them) against a table counted on the others: it
    must see the table's probabilities on images the table has not counted, as on the images users code."""
    prior = tables.stored(tables.learn_prior(planes, k), table_bytes)
    if not mixer_images:
        return prior, None
    held_out = {i * len(planes) // mixer_images for i in range(mixer_images)}
    unseen = tables.stored(tables.learn_prior([q for i, q in enumerate(planes) if i not in held_out], k), table_bytes)
    return prior, fit_mixer([planes[i] for i in sorted(held_out)], unseen, mixer_hidden, mixer_steps, log=log)


def progress(k: int, n: int) -> None:
    print(f"\r{k}/{n} training images coded", end="" if k < n else "\n", file=sys.stderr, flush=True)

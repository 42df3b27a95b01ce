"""The fast decoder: what decodes files. The same images as the reference recurrence
(RecurrentCodec.decode_reference, x̂_t = D_t(b_t)/g_t + x̂_{t-1} one step at a time), to float rounding,
computed another way (tests/test_decoders.py holds the two together):

- the decoder's last 1x1 convolution is linear in its features, so Σ_t D_t(b_t)/g_t is conv_out's weights times
  Σ_t features_t/g_t plus its bias times Σ_t 1/g_t: the sum is kept over the last cell's outputs, in place and in
  fp32, and projected once per reconstruction that is asked for (Decoder.project, a fixed order of sums, so the
  pixels are the same on every thread count);
- each block of later iterations (CodecConfig.blocks) adds its own sum to the sums of the blocks before it;
- the linear tail's stages (nets/tail.py) add their decodes after the networks' planes.

The cells' own inference arithmetic (bands of rows, in-place activations, bf16 gates with an fp32 cell state) is
nets/cells.py's; it runs wherever gradients are off, in this decoder and the reference alike.
"""
from __future__ import annotations

import itertools
from typing import Callable, Iterable, Iterator

import torch

from lstmcodec.nets.cells import depth_to_space
from lstmcodec.nets.recurrent import RecurrentCodec, keep_stopped


def reconstruct(model: RecurrentCodec, bits: Iterable[torch.Tensor], masks: Iterable[torch.Tensor | None] | None = None,
                every: bool = True, tail: bool = True, decoder: str = "fast") -> Iterator[torch.Tensor]:
    """The decoder side alone: yields x̂_t for each bit plane b_t (N x bits x H/16 x W/16, zero in blocks a mask
    leaves out), or with every=False only the last one; masks: the blocks active in each iteration (as
    `iterate`'s `active` gave them), or None. tail=False decodes every plane with the networks (a file written
    without the linear tail). decoder: "fast" (decode_fast, what decodes files) or "reference"
    (RecurrentCodec.decode_reference)."""
    if decoder == "reference":
        x_hats = list(model.decode_reference(bits, masks, tail))
        yield from x_hats if every else x_hats[-1:]
    elif decoder == "fast":
        yield from decode_fast(model, list(zip(bits, masks if masks is not None else itertools.repeat(None))),
                               every, tail)
    else:
        raise ValueError(f"decoder must be 'fast' or 'reference', not {decoder!r}")


def decode_fast(model: RecurrentCodec, steps: list, every: bool, tail: bool) -> Iterator[torch.Tensor]:
    """x̂_t for each (b_t, mask_t) of `steps` (every=False: only the last), as reconstruct promises."""
    start = model.tail.start if tail and model.tail is not None else len(steps)
    if len(steps) <= start:
        yield from _networks(model, steps, every)
        return
    x_hat = None
    for x_hat in _networks(model, steps[:start], every):
        if every:
            yield x_hat
    classes = model.tail.classes(x_hat)
    for t in range(start, len(steps)):
        x_hat = x_hat + model.tail.decode(steps[t][0], t, classes)
        if every or t + 1 == len(steps):
            yield x_hat


def _networks(model: RecurrentCodec, steps: list, every: bool) -> Iterator[torch.Tensor]:
    """The planes decoded by the networks: each block's sum (_block) added to the sums of the blocks before it,
    which ended there."""
    bounds = [b for b in (0, *model.config.blocks) if b < len(steps)] + [len(steps)]
    base, state = None, [None]
    for k, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        x_hat = None
        for t, out in _block(model, model.all_networks()[k][2], steps[lo:hi], lo, state,
                             lambda t: every or t + 1 == hi):
            x_hat = out if base is None else base + out
            if every or t + 1 == len(steps):
                yield x_hat
        base = x_hat


def _block(model: RecurrentCodec, decoder, steps: list, first: int, state: list, want: Callable[[int], bool]
           ) -> Iterator[tuple[int, torch.Tensor]]:
    """One block's planes (iterations first, first + 1, ...) decoded by its decoder, from the decoder states in
    state[0] (left there for the next block): (t, the block's part of x̂_t) for each t that want(t) asks for."""
    if model.config.additive and all(mask is None for _, mask in steps):
        yield from _block_in_place(model, decoder, steps, first, state, want)
        return
    acc, scale = 0.0, 0.0
    for t, (b, mask) in enumerate(steps, start=first):   # adaptive files (block masks) and one-shot models
        f, state[0] = model.step(decoder.features, b, state[0], t)
        f, g = f.float(), model.gain(t)
        new_acc, new_scale = (acc + f / g, scale + 1 / g) if model.config.additive else (f, 1.0)
        if mask is None:
            acc, scale = new_acc, new_scale
        else:
            acc, scale = keep_stopped(mask, new_acc, acc), keep_stopped(mask, torch.as_tensor(new_scale), scale)
        if want(t):
            yield t, decoder.project(acc, scale)


def _block_in_place(model: RecurrentCodec, decoder, steps: list, first: int, state: list, want: Callable[[int], bool]
                    ) -> Iterator[tuple[int, torch.Tensor]]:
    """_block where every block receives every plane: Σ_t h_t / g_t of the last cell's outputs before their
    depth-to-space (a permutation: the same sums), in fp32 and in place. At full resolution new tensors of this size
    are fresh memory from the kernel, and the three of an out-of-place sum took a third of a decode. A division, then
    an addition (not add_(alpha=): its vectorised loop fuses the multiply-add and its scalar tail does not, so the
    pixels would depend on how the threads split the tensor)."""
    acc, scale = 0.0, 0.0
    for t, (b, _) in enumerate(steps, start=first):
        h, state[0] = model.step(decoder.hidden, b, state[0], t)
        g = model.gain(t)
        if t == first:
            acc = h.float() / g
            quotient = torch.empty_like(acc)
        else:
            acc += torch.div(h if h.dtype == acc.dtype else quotient.copy_(h), g, out=quotient)
        scale = scale + 1 / g
        if want(t):
            yield t, decoder.project(depth_to_space(acc), scale)

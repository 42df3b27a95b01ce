"""The two decoders of nets/: the reference (RecurrentCodec.decode_reference, the recurrence as written, one
decode_step per plane) and the fast one that decodes files (nets/decoding.py: in-place sums of the last cell's
features, one projection). Every shipped model, in both arithmetics, with and without the linear tail, on adaptive
files' block masks and on blocks of later iterations: the same images to within one level."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lstmcodec.coding import framing
from lstmcodec.coding.tensors import mask_tensor, plane_to_bits, to_rgb
from lstmcodec.models.zoo import load_codec, registry
from lstmcodec.training import runs as training
from lstmcodec.nets.decoding import reconstruct

MODELS = sorted(registry()["codec"])


def _both(codec, bits, masks=None, tail=True) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    with torch.inference_mode():
        fast = list(reconstruct(codec, bits, masks, tail=tail))
        reference = list(reconstruct(codec, bits, masks, tail=tail, decoder="reference"))
    return fast, reference


def _levels(a: torch.Tensor, b: torch.Tensor, h: int, w: int) -> np.ndarray:
    """|a - b| in levels of the uint8 images the two decode to."""
    return np.abs(to_rgb(a, h, w).astype(int) - to_rgb(b, h, w).astype(int))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", MODELS)
def test_the_fast_decoder_gives_the_reference_images(name, precision, parrots):
    """Each prefix of a real photo's file (its tail stages sent only to the blocks they pay for: block masks), and
    its planes decoded without the tail: within one level everywhere; the image decompress() gives is the fast
    decoder's."""
    codec = load_codec(name, precision=precision)
    photo = parrots[:96, :128]
    data = codec.compress(photo, 16)
    d = framing.read(codec, data)
    masks = [None if m is None else mask_tensor(m, codec.device) for m in d.masks]
    bits = [plane_to_bits(p, codec.device) * (1 if m is None else m) for p, m in zip(d.planes, masks)]
    assert len(bits) >= 8
    for tail in (True, False):
        fast, reference = _both(codec, bits, masks if tail else None, tail=tail)
        assert len(fast) == len(reference) == len(bits)
        for t, (f, r) in enumerate(zip(fast, reference), 1):
            diff = _levels(f, r, 96, 128)
            assert diff.max() <= 1 and diff.mean() < 0.01, (name, precision, tail, t, diff.max(), diff.mean())
    assert np.array_equal(np.asarray(codec.decompress(data)), to_rgb(_both(codec, bits, masks)[0][-1], 96, 128))


def test_block_masks_and_blocks_of_later_iterations(parrots):
    """Adaptive files (blocks that stop receiving iterations) and a network with its own weights from iteration 3
    on: both decoders keep a stopped block's image and add each block's part."""
    fast_model = training.load_init("fast")
    blocked = training.init_codec(dataclasses.replace(fast_model.config, blocks=(3,)), fast_model).for_inference()
    x = torch.from_numpy(parrots[:64, :96].copy()).permute(2, 0, 1)[None].float() / 255 - 0.5
    stops = np.random.default_rng(0).integers(1, 7, size=(4, 6))
    masks = [mask_tensor(stops > t, "cpu") for t in range(6)]
    with torch.inference_mode():
        bits = [b * m for (b, _), m in zip(blocked.iterate(x, 6, lambda t, _x: masks[t]), masks)]
    fast, reference = _both(blocked, bits, masks)
    for f, r in zip(fast, reference):
        assert _levels(f, r, 64, 96).max() <= 1
    stopped = np.kron(stops <= 2, np.ones((16, 16), bool))   # blocks that stopped after 2 iterations keep x̂_2
    assert np.array_equal(to_rgb(fast[5], 64, 96)[stopped], to_rgb(fast[1], 64, 96)[stopped])


def test_an_unknown_decoder_is_refused():
    codec = load_codec(MODELS[0])
    with pytest.raises(ValueError, match="decoder"):
        list(reconstruct(codec, [torch.ones(1, 32, 1, 1)], decoder="other"))

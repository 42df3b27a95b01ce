"""The linear tail (lstmcodec/nets/tail.py): its stages are the recurrence's late iterations, its decode is exact
whatever the order of summation, its weights are validated, and files written without it still decode."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import lstmcodec
from lstmcodec.format import container
from lstmcodec.models import weights, zoo
from lstmcodec.coding.codec import Codec
from lstmcodec.coding.tensors import to_rgb, to_tensor
from lstmcodec.errors import CodecError
from lstmcodec.metrics import psnr
from lstmcodec.nets.tail import Gate, LinearTail, activity, from_blocks, to_blocks
from lstmcodec.nets.decoding import reconstruct


def random_tail(start: int = 3, stages: int = 2, bits: int = 32, seed: int = 0) -> LinearTail:
    g = torch.Generator().manual_seed(seed)
    basis = torch.stack([torch.linalg.qr(torch.randn(768, bits, generator=g, dtype=torch.float64))[0].T
                         for _ in range(stages)]).float()
    magnitude = torch.rand(stages, 3, bits, generator=g) * 0.02
    return LinearTail(start, basis, torch.tensor([0.01, 0.03]), magnitude)


def bundled(name: str = "fast", tail: LinearTail | None = None) -> Codec:
    """A fresh copy of a bundled codec (not the cached one), with `tail` in place of its own."""
    path, _ = zoo.resolve("codec", name)
    codec = Codec.from_weights(path, weights.read(path, "codec")).for_inference("cpu", "fp32")
    codec.set_tail(tail)
    codec._fingerprint = codec._network_fingerprint = None   # recomputed with this tail
    return codec


def test_blocks_round_trip_in_channel_row_column_order():
    x = torch.arange(2 * 3 * 32 * 48, dtype=torch.float32).reshape(2, 3, 32, 48)
    v = to_blocks(x)
    assert v.shape == (2, 2, 3, 768)
    assert torch.equal(v[1, 1, 2], x[1, :, 16:32, 32:48].reshape(-1))
    assert torch.equal(from_blocks(v), x)


def test_activity_is_zero_on_flat_blocks_and_grows_with_texture():
    x = torch.full((1, 3, 48, 48), 0.2)
    x[..., :16, 32:] = torch.randn(1, 3, 16, 16) * 0.1
    a = activity(x)[0]
    assert a[2, 0] == 0 and a[2, 1] == 0 and a[0, 0] == 0 and a[0, 2] > 0.03
    assert 0 < a[1, 2] < a[0, 2]   # the high-pass reaches one pixel into the next block


def test_decode_is_exact_in_any_order_of_summation():
    tail = random_tail()
    b = torch.where(torch.rand(1, 32, 4, 5) < 0.5, 1.0, -1.0)
    classes = torch.randint(0, 3, (1, 4, 5))
    out = tail.decode(b, 4, classes)
    coef = b.permute(0, 2, 3, 1).double() * tail.magnitude[1].double()[classes]
    backwards = torch.zeros(1, 4, 5, 768, dtype=torch.float64)
    for k in reversed(range(32)):
        backwards += coef[..., k:k + 1] * tail.basis[1, k].double()
    assert torch.equal(out, from_blocks(backwards.float()))


def test_the_arrays_round_trip_and_bad_ones_are_refused():
    tail = random_tail()
    again = LinearTail.from_arrays(tail.arrays(), 32)
    for name in ("basis", "edges", "magnitude"):
        assert torch.equal(getattr(again, name), getattr(tail, name))
    assert again.start == tail.start
    bad = [
        ({**tail.arrays(), "edges": torch.tensor([0.03, 0.01])}, "increasing"),
        ({**tail.arrays(), "magnitude": torch.zeros(2, 4, 32)}, "magnitude must be"),
        ({**tail.arrays(), "basis": tail.arrays()["basis"] * 20}, "at most 1"),
        ({**tail.arrays(), "start": torch.tensor([0])}, "start must be"),
        ({k: v for k, v in tail.arrays().items() if k != "edges"}, "must hold"),
    ]
    for arrays, message in bad:
        with pytest.raises(ValueError, match=message):
            LinearTail.from_arrays(arrays, 32)


def test_stages_are_the_late_iterations_and_reconstruct_agrees_with_iterate(parrots):
    codec, without = bundled(tail=random_tail(start=3, stages=2)), bundled()
    x = to_tensor(parrots[:128, :160])
    with torch.inference_mode():
        steps = list(codec.iterate(x, 6))
        rebuilt = list(reconstruct(codec, [b for b, _ in steps]))
        plain = list(without.iterate(x, 3))
    for (b, x_hat), (b0, x_hat0) in zip(steps[:3], plain):   # the networks' iterations are untouched
        assert torch.equal(b, b0) and torch.allclose(x_hat, x_hat0, atol=1e-5)
    for (_, x_hat), again in zip(steps, rebuilt):
        assert (x_hat - again).abs().max() < 1e-4
    # a stage sends the signs of the residual's projections on its basis
    r = x - steps[2][1]
    expected = torch.where(to_blocks(r) @ codec.tail.basis[0].T >= 0, 1.0, -1.0).permute(0, 3, 1, 2)
    assert torch.equal(steps[3][0], expected)


def test_a_file_written_without_the_tail_still_decodes_as_before(parrots):
    old, new = bundled(), bundled(tail=random_tail(start=3, stages=2))
    assert new.network_fingerprint == old.fingerprint != new.fingerprint
    data = old.compress(parrots, 5)
    assert np.array_equal(np.asarray(new.decompress(data)), np.asarray(old.decompress(data)))
    mine = new.compress(parrots, 5)
    assert mine != data
    with pytest.raises(CodecError, match="model mismatch"):
        old.decompress(mine)


def test_progressive_prefixes_of_a_tail_file_equal_shorter_decodes(parrots):
    codec = bundled(tail=random_tail(start=2, stages=3))
    data = codec.compress(parrots, 5)
    every = [np.asarray(im) for im in codec.decompress_progressive(data)]
    for k in (1, 2, 3, 5):
        assert np.array_equal(every[k - 1], np.asarray(codec.decompress(data, iterations=k)))


def test_the_fitted_tail_keeps_quality_rising(parrots):
    """The bundled default's tail, on a photo it never saw: iterations past the networks' last still pay, and the
    encoder's own reconstruction is what the decoder makes of the file."""
    codec = zoo.load_codec("default", precision="fp32")
    start = codec.tail.start
    data = codec.compress(parrots, start + 4)
    images = [np.asarray(im) for im in codec.decompress_progressive(data)]
    assert len(images) == start + 4
    gains = [psnr(parrots, b) - psnr(parrots, a) for a, b in zip(images[start - 1:], images[start:])]
    assert min(gains) > 0.2, gains
    planes, masks = codec.encode_planes(parrots, start + 4)
    with torch.inference_mode():
        gate = Gate(codec.tail, to_tensor(parrots))
        *_, (_, x_hat) = codec.iterate(to_tensor(parrots), start + 4, gate)
    assert np.abs(to_rgb(x_hat, *parrots.shape[:2]).astype(int) - images[-1]).max() <= 1
    assert all(m is None for m in masks[:start]) and all(m is not None for m in masks[start:])


def test_tail_stages_go_only_to_the_blocks_they_pay_for(parrots):
    """Flat blocks stop receiving stages (a version-2 file with a count per block); a flat image stops early."""
    codec = zoo.load_codec("default", precision="fp32")
    start = codec.tail.start
    photo = parrots.copy()
    photo[:, :photo.shape[1] // 2] = (200, 120, 40)        # a flat half
    data = codec.compress(photo, start + 6)
    d = codec.read(data)
    assert container.read(data).iteration_map is not None and d.masks[-1] is not None
    left, right = d.masks[-1][:, :2], d.masks[-1][:, -4:]
    assert left.mean() < 0.2 < right.mean()
    decoded = [np.asarray(im) for im in codec.decompress_progressive(data)]
    for k in (start, start + 3, len(decoded)):                # prefixes are the coarser images, and the files of -i k
        shorter = container.truncate(data, k)
        assert np.array_equal(np.asarray(codec.decompress(shorter)), decoded[k - 1])
        assert shorter == codec.compress(photo, k)
    assert container.read(container.truncate(data, start)).iteration_map is None   # every block the same count
    flat = np.full((64, 96, 3), 90, np.uint8)
    small = codec.compress(flat, start + 6)
    assert container.read(small).header.iterations <= start + 1
    assert psnr(flat, np.asarray(lstmcodec.decode(small))) > 35

"""Blocks of later iterations with their own networks (CodecConfig.blocks): the recurrence, the decoder's sums,
a weights file's round trip, and training only the last block."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import lstmcodec
from lstmcodec.training import runs as training
from lstmcodec.coding.codec import Codec
from lstmcodec.coding.tensors import to_tensor
from lstmcodec.nets.config import CodecConfig
from lstmcodec.models.zoo import load_codec
from lstmcodec.nets.decoding import reconstruct


@pytest.fixture(scope="module")
def fast():
    return training.load_init("fast")


def _blocked(fast, blocks=(3,)):
    return training.init_codec(dataclasses.replace(fast.config, blocks=blocks), fast).eval()


def test_a_copied_block_codes_as_the_network_it_copies(fast, parrots):
    """A new block starts as a copy of the network before it: the same bits and reconstructions as without blocks."""
    blocked = _blocked(fast)
    x = to_tensor(parrots[:64, :96])
    with torch.no_grad():
        plain, split = list(fast.eval().iterate(x, 5)), list(blocked.iterate(x, 5))
        for (b0, x0), (b1, x1) in zip(plain, split):
            assert torch.equal(b0, b1)
            assert torch.allclose(x0, x1, atol=1e-6)
        # the decoder side alone sums each block's features apart and adds the blocks' projections
        rec = list(reconstruct(blocked, [b for b, _ in split]))
    assert len(rec) == 5
    for (_, x_it), x_rec in zip(split, rec):
        assert (x_it - x_rec).abs().max() < 1e-4


def test_each_block_runs_its_own_network(fast, parrots):
    blocked = _blocked(fast, (2, 4))
    assert [blocked.block(t) for t in range(6)] == [0, 0, 1, 1, 2, 2]
    with torch.no_grad():
        for p in blocked.later[1].decoder.parameters():
            p.mul_(0.5)
        x = to_tensor(parrots[:64, :64])
        plain, split = list(fast.eval().iterate(x, 6)), list(blocked.iterate(x, 6))
        rec = list(reconstruct(blocked, [b for b, _ in split]))
    for t in range(4):   # iterations before the changed block: unchanged
        assert torch.allclose(plain[t][1], split[t][1], atol=1e-6)
    assert not torch.allclose(plain[4][1], split[4][1], atol=1e-3)
    assert (split[5][1] - rec[5]).abs().max() < 1e-4


def test_a_blocked_weights_file_round_trips(fast, parrots, tmp_path):
    blocked = _blocked(fast, (4,))
    with torch.no_grad():
        for p in blocked.later[0].parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path / "blocked.pt"
    training.export_codec(blocked, path, "blocked")
    codec = load_codec(str(path), precision="fp32")
    assert codec.config.blocks == (4,)
    data = codec.compress(parrots, 6)
    out = np.asarray(lstmcodec.decode(data, model=str(path)).convert("RGB"))
    assert out.shape == parrots.shape
    assert lstmcodec.metrics.psnr(out, parrots) > 20


def test_train_from_a_block_trains_only_that_block(fast):
    model = _blocked(fast, (2,)).train()
    model.set_stochastic_bits(False)
    for k, networks in enumerate(model.all_networks()):
        for part in networks:
            part.requires_grad_(k == 1)
    x = torch.rand(2, 3, 32, 32) - 0.5
    x_hats = model(x, 4, grad_from=2).x_hats
    assert len(x_hats) == 2
    sum((x - x_hat).abs().mean() for x_hat in x_hats).backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is None for p in model.decoder.parameters())
    assert all(p.grad is not None for p in model.later[0].decoder.parameters())


@pytest.mark.parametrize("blocks", [(0,), (3, 3), (5, 2), tuple(range(1, 11))])
def test_bad_blocks_are_refused(blocks):
    with pytest.raises(ValueError, match="blocks"):
        CodecConfig(blocks=blocks)


def test_codec_of_an_unblocked_config_has_no_later_networks():
    assert len(Codec(CodecConfig()).later) == 0

"""Spatially adaptive bit rates: `encode --quality Q --adaptive`, the iteration map, progressive decoding."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import lstmcodec
from lstmcodec.coding import adaptive as adaptive_mode, ratecontrol
from lstmcodec.format import container, itermap
from lstmcodec.models.zoo import load_codec
from lstmcodec.errors import CodecError
from lstmcodec.geometry import blocks
from lstmcodec.io.imageio import prepare
from lstmcodec.metrics import local_ms_ssim, ms_ssim

from conftest import run_cli

TARGET = 0.9


@pytest.fixture(scope="module")
def adaptive(houses):
    """houses (160x160) coded with --quality 0.9 --adaptive, at most 8 iterations, 32-px tiles
    (the default weights give its sky fewer iterations than its roofs: a smaller file than uniform)."""
    return adaptive_mode.encode_adaptive(load_codec(), prepare(Image.fromarray(houses)), TARGET, max_iterations=8)


def test_adaptive_file_reaches_the_target_and_holds_its_map(adaptive, houses):
    res, run = adaptive
    fi = lstmcodec.info(res.data)
    assert fi.tile == 32 and np.asarray(fi.tile_iterations).shape == (5, 5)
    counts = np.asarray(fi.tile_iterations)
    assert (counts == run.counts).all() and counts.min() >= 1 and counts.max() == fi.iterations
    assert counts.min() < counts.max()            # the flat sky stops early, the roofs do not
    decoded = np.asarray(lstmcodec.decode(res.data))
    assert ms_ssim(decoded, houses) >= TARGET
    assert np.abs(decoded.astype(int) - run.rgb).max() <= 1   # the decoder rebuilds what the encoder measured


def test_stopped_tiles_cost_no_bits(adaptive, houses):
    res, run = adaptive
    f = container.read(res.data)
    for payload, mask in zip(f.iterations, run.masks):
        assert len(payload) <= 1 + (32 * int(mask.sum()) + 7) // 8   # only the live blocks' bits are coded
    # every tile at the deepest count costs more, and uniform rate control for the same target no less
    full = load_codec().compress(houses, int(run.counts.max()))
    assert len(res.data) < len(full)
    uniform, _ = ratecontrol.encode_to_target(load_codec(), prepare(Image.fromarray(houses)),
                                              ratecontrol.RateTarget(quality=TARGET), 8)
    assert len(res.data) < len(uniform.data)


def test_the_linear_tail_sends_its_stages_only_where_they_pay_inside_live_tiles(houses):
    """At a target past the networks' 12 iterations, the tail's stages go to the blocks of live tiles that they rid of
    enough error (as a plain encode sends them): the map is then per block, and the file no larger than what plain
    rate control writes for the same target."""
    codec, src, target = load_codec(), prepare(Image.fromarray(houses)), 0.984
    res, run = adaptive_mode.encode_adaptive(codec, src, target, max_iterations=16)
    plain, chosen = ratecontrol.encode_to_target(codec, src, ratecontrol.RateTarget(quality=target), 16)
    assert chosen > codec.tail.start and len(res.data) < len(plain.data)
    assert ms_ssim(np.asarray(lstmcodec.decode(res.data)), houses) >= target
    assert run.tile == 1 and lstmcodec.info(res.data).tile == 16
    live = [int(m.sum()) for m in run.masks]
    assert all(a >= b for a, b in zip(live, live[1:]))
    stages = live[codec.tail.start:]
    assert stages and stages[-1] < live[codec.tail.start - 1]   # some blocks of live tiles refused a stage


def test_uniform_winner_is_a_plain_file(parrots):
    """When every tile needs the same count (parrots at 0.9), the result is the uniform file itself, no map."""
    src = prepare(Image.fromarray(parrots))
    res, run = adaptive_mode.encode_adaptive(load_codec(), src, 0.9, max_iterations=8)
    uniform, chosen = ratecontrol.encode_to_target(load_codec(), src, ratecontrol.RateTarget(quality=0.9), 8)
    assert (run.counts == chosen).all() and res.data == uniform.data
    assert container.read(res.data).iteration_map is None


def test_adaptive_prefixes_decode_progressively(adaptive):
    res, run = adaptive
    n = lstmcodec.info(res.data).iterations
    counts, tile = itermap.decode_map(container.read(res.data).iteration_map, blocks(*run.rgb.shape[:2]))
    for k in (1, n // 2, n):
        cut = container.truncate(res.data, k)   # the map's counts capped at k; no map where they are then all k
        capped = np.minimum(counts, k)
        expected = None if (capped == k).all() else itermap.encode_map(capped, tile)
        assert container.read(cut).iteration_map == expected
        assert np.array_equal(np.asarray(lstmcodec.decode(cut)), np.asarray(lstmcodec.decode(res.data, iterations=k)))
    # a file cut right after an iteration chunk decodes too
    f = container.read(res.data)
    assert np.array_equal(np.asarray(lstmcodec.decode(res.data[:len(res.data) - sum(f.chunk_sizes[2:])])),
                          np.asarray(lstmcodec.decode(res.data, iterations=2)))


def test_iteration_map_coding():
    rng = np.random.default_rng(1)
    counts = rng.integers(1, 17, (12, 20))
    payload = itermap.encode_map(counts, 2)
    back, tile = itermap.decode_map(payload, (24, 39))
    assert tile == 2 and np.array_equal(back, counts)
    flat = np.full((3, 4), 7)
    assert np.array_equal(itermap.decode_map(itermap.encode_map(flat, 4), (12, 16))[0], flat)
    for bad in (b"", b"\x03\x01\x01\x00", payload[:5], payload + b"\x01", b"\x02\x00"):
        with pytest.raises(CodecError, match="iteration map"):
            itermap.decode_map(bad, (24, 39))
    masks = itermap.map_masks(np.array([[1, 3]]), 2, (2, 3), 3)
    assert [m.sum() for m in masks] == [6, 2, 2] and masks[1][:, 2].all() and not masks[1][:, :2].any()


def test_versions_and_map_chunk_rules():
    hd = container.Header(32, 32, "RGB", 1, "m", b"12345678")
    v1 = container.write(hd, [b"\x00a"])
    v2 = container.write(hd, [b"\x00a"], iteration_map=b"\x02\x01\x01\x00")
    assert v1[4] == container.VERSION and v2[4] == container.ADAPTIVE_VERSION
    assert container.read(v2).iteration_map == b"\x02\x01\x01\x00" and container.read(v1).iteration_map is None
    # a version-2 header without its map, and a map chunk in a version-1 file, are refused
    no_map = container.write(hd, [b"\x00a"])
    no_map = bytearray(no_map)
    no_map[4] = container.ADAPTIVE_VERSION
    with pytest.raises(CodecError):
        container.read(bytes(no_map))   # header CRC covers the version byte
    from lstmcodec.evaluation.fuzz import repair_crcs
    with pytest.raises(CodecError, match="iteration map but has none"):
        container.read(repair_crcs(bytes(no_map)))
    with_map_v1 = bytearray(v2)
    with_map_v1[4] = container.VERSION
    with pytest.raises(CodecError, match="unexpected chunk type"):
        container.read(repair_crcs(bytes(with_map_v1)))


def test_local_ms_ssim_map_tracks_ms_ssim(parrots):
    x = torch.from_numpy(parrots.copy()).permute(2, 0, 1)[None].float() / 255
    noisy = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    noisy[..., :, :128] = x[..., :, :128]                      # left half untouched
    m = local_ms_ssim(x, noisy)
    assert m.shape == (1, 192, 256)
    assert m[0, :, :100].mean() > 0.99 and m[0, :, 160:].mean() < 0.95
    assert abs(float(m.mean()) - ms_ssim((noisy[0].permute(1, 2, 0) * 255).round().numpy().astype(np.uint8),
                                          parrots)) < 0.03


def test_cli_adaptive_encode_info_map(tmp_path, parrots_path):
    out = tmp_path / "p.lstm"
    houses_path = parrots_path.parent / "houses.png"
    r = run_cli("encode", houses_path, "-o", out, "--quality", "0.9", "--adaptive", "-i", "8")
    assert r.returncode == 0, r.stderr.decode()
    assert "tiles of 32 px get" in r.stderr.decode()
    r = run_cli("info", out, "--map", tmp_path / "map.png")
    assert r.returncode == 0 and "adaptive: 25 tiles of 32 px" in r.stdout.decode()
    with Image.open(tmp_path / "map.png") as im:
        assert im.size == (160, 160) and im.mode == "L" and len(set(np.asarray(im).ravel().tolist())) > 1
    r = run_cli("decode", out, "-o", tmp_path / "p.png")
    assert r.returncode == 0, r.stderr.decode()
    r = run_cli("encode", parrots_path, "-o", tmp_path / "x.lstm", "--adaptive")
    assert r.returncode == 2 and "--adaptive needs --quality" in r.stderr.decode()
    plain = tmp_path / "plain.lstm"
    assert run_cli("encode", parrots_path, "-o", plain, "-i", "1").returncode == 0
    r = run_cli("info", plain, "--map", tmp_path / "m2.png")
    assert r.returncode == 1 and "no iteration map" in r.stderr.decode() and not (tmp_path / "m2.png").exists()


def test_stopped_blocks_keep_their_reconstruction_in_training():
    from lstmcodec.nets.config import CodecConfig
    from lstmcodec.nets.recurrent import RecurrentCodec

    torch.manual_seed(0)
    net = RecurrentCodec(CodecConfig(width=0.125)).eval()
    x = torch.rand(1, 3, 32, 64) - 0.5
    stops = torch.tensor([[[[1, 3, 2, 3], [3, 3, 3, 3]]]])        # blocks: (0, 0) stops after 1, (0, 2) after 2
    with torch.no_grad():
        out = net(x, 3, stops).x_hats
        free = net(x, 3).x_hats
    block = lambda t, r, c: t[..., 16 * r:16 * r + 16, 16 * c:16 * c + 16]  # noqa: E731
    assert torch.equal(block(out[2], 0, 0), block(out[0], 0, 0)) and torch.equal(block(out[2], 0, 2), block(out[1], 0, 2))
    assert not torch.equal(block(out[2], 1, 1), block(out[1], 1, 1))
    assert torch.equal(out[0], free[0])                          # the first iteration is never masked


def test_eval_adaptive_script_measures_against_plain_rate_control(tmp_path):
    """scripts/eval_adaptive.py on houses: the plain file's prefixes and the adaptive file, each decoded; its table
    and JSON say the adaptive file is the smaller one for the same target (as the fixture above finds)."""
    import json
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, str(root / "scripts" / "eval_adaptive.py"), str(root / "tests" / "data" / "houses.png"),
                        "--targets", str(TARGET), "--threads", "1", "-o", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"| {TARGET} | 1 / 1 |" in r.stdout
    out = json.loads((tmp_path / "adaptive.json").read_text())
    (summary,) = out["summaries"]
    assert summary["images"] == 1 and summary["adaptive_bpp"] < summary["plain_bpp"] and summary["saving"] > 0
    image = out["images"][0]
    assert image["adaptive"][str(TARGET)]["map"] and image["adaptive"][str(TARGET)]["ms-ssim"] >= TARGET
    assert len(image["plain"]["bytes"]) == len(image["plain"]["ms-ssim"]) >= 8

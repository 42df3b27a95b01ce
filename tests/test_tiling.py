"""Large images in overlapping tiles (format version 3): geometry, seams, prefixes, header, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from lstmcodec.coding import adaptive
from lstmcodec.format import tiling
from lstmcodec import api
from lstmcodec.format import container
from lstmcodec.models.zoo import load_codec
from lstmcodec.errors import CodecError
from lstmcodec.io.imageio import prepare

from conftest import run_cli


@pytest.mark.parametrize("side,overlap,height,width", [(96, 16, 256, 192), (1024, 16, 4000, 6000), (64, 16, 80, 64), (128, 32, 400, 128)])
def test_tiles_cover_the_image_and_blend_to_one(side, overlap, height, width):
    plan = tiling.Tiling(side, overlap)
    total = np.zeros((height, width))
    for t in plan.tiles(height, width):
        assert t.y1 - t.y0 <= side and t.x1 - t.x0 <= side
        assert t.weights.shape == (t.y1 - t.y0, t.x1 - t.x0)
        total[t.y0:t.y1, t.x0:t.x1] += t.weights
    np.testing.assert_allclose(total, 1, atol=1e-6)
    rows = sum(e - s for s, e in plan.spans(height)) // 16
    cols = sum(e - s for s, e in plan.spans(width)) // 16
    assert plan.grid(height, width) == (rows, cols)
    last = plan.tiles(height, width)[-1]
    assert (last.rows.stop, last.cols.stop) == (rows, cols)


def test_plan_tiles_only_large_images():
    assert tiling.plan(1920, 1080) is None                       # full HD is coded whole
    assert tiling.plan(6000, 4000) == tiling.Tiling(tiling.EXTENT, tiling.OVERLAP)
    assert tiling.plan(6000, 4000, "off") is None
    assert tiling.plan(256, 192, 96) == tiling.Tiling(96, tiling.OVERLAP)
    assert tiling.plan(256, 192, 512) is None                    # one tile covers it
    with pytest.raises(ValueError, match="multiples of 16"):
        tiling.plan(256, 192, 100)


@pytest.fixture(scope="module")
def tiled_and_plain(parrots):
    src = prepare(Image.fromarray(parrots))
    return api.encode_image(src, 8, tiles=96).data, api.encode_image(src, 8, tiles="off").data


def test_tile_seams_do_not_show(parrots, tiled_and_plain):
    """The error next to tile edges stays within 10 % of what untiled coding gives on the same pixels,
    and the whole image's PSNR within 0.2 dB (measured: 1.004 and +0.02 dB)."""
    tiled, plain = tiled_and_plain
    a = np.asarray(api.decode(tiled)).astype(float)
    b = np.asarray(api.decode(plain)).astype(float)
    err_tiled, err_plain = ((a - parrots) ** 2).mean(2), ((b - parrots) ** 2).mean(2)
    h, w = parrots.shape[:2]
    seam = tiling.Tiling(96, 16).seam_distance(h, w) < 2
    assert 0.1 < seam.mean() < 0.2
    assert err_tiled[seam].mean() < 1.10 * err_plain[seam].mean()
    psnr = lambda e: 10 * np.log10(255 ** 2 / e.mean())
    assert abs(psnr(err_tiled) - psnr(err_plain)) < 0.2
    assert psnr(err_tiled) > 25


def test_tiled_file_header_and_prefixes(tiled_and_plain):
    tiled, plain = tiled_and_plain
    hd, _, version = container.read_header(tiled)
    assert (version, hd.tiles) == (container.TILED_VERSION, (96, 16))
    assert container.read_header(plain)[2] == container.VERSION
    # 3 x 3 tiles of at most 96 px: the overlaps cost bits (measured: +30 % at this tile size)
    assert len(plain) < len(tiled) < 1.5 * len(plain)
    full = list(api.decode_progressive(tiled, iterations=3))
    for k in (1, 3):
        cut = container.truncate(tiled, k)
        assert container.read_header(cut)[0].tiles == (96, 16)
        assert np.array_equal(np.asarray(api.decode(cut)), np.asarray(full[k - 1]))
        assert np.array_equal(np.asarray(api.decode(tiled, iterations=k)), np.asarray(full[k - 1]))


@pytest.mark.parametrize("side,overlap", [(40, 16), (32, 0), (256, 128)])   # not /16, too small, too much overlap
def test_bad_tiling_in_header_is_refused(tiled_and_plain, side, overlap):
    import struct
    import zlib

    hd, size, _ = container.read_header(tiled_and_plain[0])
    data = bytearray(tiled_and_plain[0])
    struct.pack_into("<HH", data, size - 8, side, overlap)
    struct.pack_into("<I", data, size - 4, zlib.crc32(data[:size - 4]))
    with pytest.raises(CodecError, match="invalid tiling"):
        api.decode(bytes(data))


def test_adaptive_refuses_images_that_need_tiles():
    src = prepare(Image.new("RGB", (2048, 1100), (90, 120, 200)))
    with pytest.raises(CodecError, match="coded in tiles"):
        adaptive.encode_adaptive(load_codec(), src, 0.9)


def test_cli_tiles(tmp_path, parrots_path):
    out = tmp_path / "p.lstm"
    r = run_cli("encode", parrots_path, "-o", out, "-i", "2", "--tiles", "128")
    assert r.returncode == 0, r.stderr
    r = run_cli("info", out)
    assert "tiled: 2 x 3 tiles of 128 px overlapping by 16 px" in r.stdout.decode()
    assert json.loads(run_cli("info", out, "--json").stdout)["tiles"] == {"side": 128, "overlap": 16, "rows": 2, "columns": 3}
    r = run_cli("decode", out, "-o", tmp_path / "p.png")
    assert r.returncode == 0 and Image.open(tmp_path / "p.png").size == (256, 192)
    for bad in ("100", "big"):
        r = run_cli("encode", parrots_path, "-o", tmp_path / "x.lstm", "--tiles", bad)
        assert r.returncode != 0 and b"Traceback" not in r.stderr
        assert b"--tiles" in r.stderr or b"multiples of 16" in r.stderr
        assert not (tmp_path / "x.lstm").exists()

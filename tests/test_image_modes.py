"""Every mode Pillow opens gets a documented conversion and a notice for anything lost: 16-bit by the depth the file
declares, floats by their range or refused, colour-key transparency kept as alpha, extra frames named."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import lstmcodec
from lstmcodec import CodecError
from lstmcodec.io.imageio import open_image, prepare


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png16_rgb(a: np.ndarray) -> bytes:
    """A 16-bit RGB PNG (Pillow writes none)."""
    h, w, _ = a.shape
    raw = b"".join(b"\0" + a[y].astype(">u2").tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))


def test_a_dark_16_bit_grey_png_stays_dark(tmp_path):
    """Values 0..200 of 65535 are 0..1 of 255: the declared depth scales them, not their maximum."""
    a = (np.arange(64 * 64).reshape(64, 64) % 201).astype(np.uint16)
    Image.fromarray(a).save(tmp_path / "dark.png")
    src = prepare(open_image(tmp_path / "dark.png"))
    assert src.rgb.max() <= 1 and any("16-bit" in n for n in src.notices)
    out = np.asarray(lstmcodec.decode(lstmcodec.encode(tmp_path / "dark.png", iterations=4)).convert("L"))
    assert out.mean() < 8


def test_16_bit_rgb_gets_its_notice(tmp_path):
    a = np.random.default_rng(0).integers(0, 65536, (16, 16, 3))
    (tmp_path / "c.png").write_bytes(png16_rgb(a))
    src = prepare(open_image(tmp_path / "c.png"))
    assert np.array_equal(src.rgb, (a >> 8).astype(np.uint8))
    assert "16-bit RGB image reduced to 8 bits per channel" in src.notices


def test_floats_by_their_range_or_refused(tmp_path):
    unit = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    Image.fromarray(unit).save(tmp_path / "unit.tif")
    src = prepare(open_image(tmp_path / "unit.tif"))
    assert src.rgb.max() == 255 and src.rgb.min() == 0 and "0..1 scaled" in src.notices[-1]
    Image.fromarray(unit * 255).save(tmp_path / "bytes.tif")
    assert prepare(open_image(tmp_path / "bytes.tif")).rgb.max() == 255
    Image.fromarray(unit * 1000 - 5).save(tmp_path / "odd.tif")
    with pytest.raises(CodecError, match="outside 0..255"):
        prepare(open_image(tmp_path / "odd.tif"))


@pytest.mark.parametrize("mode, key, kept", [("RGB", (10, 20, 30), "RGBA"), ("L", 7, "LA")])
def test_colour_key_transparency_is_kept(tmp_path, mode, key, kept):
    im = Image.new(mode, (32, 32), key)
    im.paste((200, 100, 50) if mode == "RGB" else 200, (0, 0, 16, 32))
    im.save(tmp_path / "k.png", transparency=key)
    src = prepare(open_image(tmp_path / "k.png"))
    assert src.mode == kept and "colour-key transparency kept as an alpha channel" in src.notices
    out = lstmcodec.decode(lstmcodec.encode(tmp_path / "k.png", iterations=2))
    alpha = np.asarray(out.getchannel("A"))
    assert out.mode == kept and alpha[:, :16].min() == 255 and alpha[:, 16:].max() == 0


def test_extra_frames_are_named(tmp_path):
    frames = [Image.new("RGB", (16, 16), (i * 60, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    assert "only the first of its 3 frames is coded" in prepare(open_image(tmp_path / "a.gif")).notices


@pytest.mark.parametrize("fmt", ["gif", "tga", "pcx", "sgi", "jpeg", "png"])
def test_sizes_a_format_cannot_hold_are_one_line(fmt):
    from lstmcodec.io.imageio import encode_image_bytes

    wide = Image.new("RGB", (65_600, 2))
    if fmt == "png":
        assert encode_image_bytes(wide, fmt)[:4] == b"\x89PNG"
        return
    with pytest.raises(CodecError, match=f"cannot write this image as {fmt.upper()}") as e:
        encode_image_bytes(wide, fmt)
    assert "\n" not in str(e.value)


def test_decoding_to_jpeg_too_wide_is_one_line(tmp_path):
    from conftest import run_cli

    src = tmp_path / "wide.png"
    Image.new("RGB", (65_600, 16), (90, 120, 150)).save(src)
    assert run_cli("encode", src, "-i", "1", "-o", tmp_path / "w.lstm").returncode == 0
    r = run_cli("decode", tmp_path / "w.lstm", "-o", tmp_path / "w.jpg")
    assert r.returncode == 1 and r.stderr.decode().count("\n") == 1, r.stderr
    assert r.stderr.startswith(b"error: cannot write this image as JPEG") and not (tmp_path / "w.jpg").exists()

"""Hostile input, as an attacker would try it: exotic and chatty image files, tiny files that claim huge images,
broken standard output, colliding outputs, hostile weights files, bad options, Ctrl-C at start-up, and decoded
pixels that must not depend on the thread count. Each: exit 1 (2 for usage), one stderr line starting `error:`, no
traceback, no output left, the input unchanged."""
from __future__ import annotations

import io
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, TiffImagePlugin

from lstmcodec import api
from lstmcodec.format import container
from lstmcodec.models import zoo
from lstmcodec.coding import large
from lstmcodec.coding.codec import Codec
from lstmcodec.nets.config import CodecConfig
from lstmcodec.training.runs import export_codec

from conftest import DATA, run_cli

ROOT = Path(__file__).resolve().parent.parent


def _one_error(r: subprocess.CompletedProcess, code: int = 1) -> str:
    err = r.stderr.decode()
    assert r.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    return lines[0]


def _dds(flags: int, fourcc: bytes = b"", dxgi: int | None = None) -> bytes:
    pf = struct.pack("<II4sIIIII", 32, flags, fourcc, 32, 0xFF0000, 0xFF00, 0xFF, 0xFF000000)
    head = struct.pack("<IIIIIII", 124, 0x1007, 4, 4, 16, 0, 0) + b"\0" * 44 + pf + struct.pack("<IIIII", 0x1000, 0, 0, 0, 0)
    return b"DDS " + head + (struct.pack("<IIIII", dxgi, 3, 0, 1, 0) if dxgi is not None else b"") + b"\0" * 64


def test_exotic_image_formats_are_one_error_line(tmp_path):
    """Pillow's DDS reader raises NotImplementedError for these; encode turns every failure to read into one line."""
    for k, data in enumerate([_dds(0x4, b"DX10", 93), _dds(0x8), _dds(0x4, b"ABCD")]):
        src = tmp_path / f"x{k}.dds"
        src.write_bytes(data)
        line = _one_error(run_cli("encode", src, "-o", tmp_path / f"x{k}.lstm"))
        assert "cannot read image" in line and not (tmp_path / f"x{k}.lstm").exists()
        assert src.read_bytes() == data


def test_library_chatter_does_not_reach_stderr(tmp_path):
    """A damaged LZW TIFF makes libtiff print its own message before Pillow raises: the user sees one line."""
    im = Image.fromarray((np.arange(64 * 64 * 3) % 251).astype(np.uint8).reshape(64, 64, 3))
    info = TiffImagePlugin.ImageFileDirectory_v2()
    for tag in range(65000, 65040):
        info[tag] = "x"
    buf = io.BytesIO()
    im.save(buf, format="TIFF", compression="tiff_lzw", tiffinfo=info)
    data = bytearray(buf.getvalue())
    for i in range(200, 260):
        data[i] ^= 0x5A
    src = tmp_path / "chatty.tif"
    src.write_bytes(bytes(data))
    _one_error(run_cli("encode", src, "-o", tmp_path / "c.lstm"))


def _claim(width: int, height: int, iterations: int = 1, version_map: bool = False) -> bytes:
    """A tiny file with valid framing and CRCs that claims a large image (each iteration a one-word chunk)."""
    codec = zoo.load_codec()
    header = container.Header(width, height, "RGB", iterations, codec.name, codec.fingerprint)
    imap = bytes([8, 4]) + struct.pack("<4H", 1, 1, 1, 1) + b"\0" * 8 if version_map else None
    return container.write(header, [b"\x02" + b"\0" * 4] * iterations, iteration_map=imap)


WRAPPER = """import resource, subprocess, sys
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
r = subprocess.run([sys.executable, "-m", "lstmcodec", *sys.argv[1:]], capture_output=True)
sys.stderr.buffer.write(r.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(r.returncode)
"""


def _limited(*args: str) -> tuple[subprocess.CompletedProcess, float, float]:
    """The CLI under a 6 GiB address-space cap; returns its result, wall time and peak RSS in GiB."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", WRAPPER, *map(str, args)], capture_output=True, timeout=120)
    return r, time.perf_counter() - t0, int(r.stdout.split()[-1]) / (1 << 20)


@pytest.mark.parametrize("claim", [(4096, 4096, 1), (16384, 16384, 1), (16777216, 15, 1), (65535, 255, 4, True)],
                         ids=["4096^2", "16384^2", "16777216x15", "adaptive"])
def test_tiny_files_that_claim_large_images_cost_little(tmp_path, claim):
    data = _claim(*claim)
    assert len(data) < 1024
    f = tmp_path / "claim.lstm"
    f.write_bytes(data)
    r, seconds, rss = _limited("decode", f, "-o", tmp_path / "out.png")
    assert "more decoding work than a real file of its size needs" in _one_error(r)
    assert not (tmp_path / "out.png").exists()
    assert seconds < 30 and rss < 2.0, (seconds, rss)


def test_the_work_budget_admits_the_cheapest_real_files():
    """A flat image at one iteration is the most pixels per byte a real file holds: a 2048x2048 one is under
    1 KiB, and the decoder must not refuse what its own encoder made."""
    flat = Image.fromarray(np.full((2048, 2048, 3), 128, np.uint8))
    data = api.encode(flat, iterations=1)
    assert len(data) < 1024
    assert api.decode(data).size == (2048, 2048)


def test_a_tiny_tiled_file_of_the_costliest_model_is_counted_at_its_cost(tmp_path):
    """79 bytes: `best` in 5,120 tiles of a 16 x 245,760 strip at one iteration. Counted in pixels alone it was inside
    the budget and took 11 s of one thread; counted at best's cost per pixel and per tile it is refused at once."""
    import zlib

    data = zoo.load_codec("best").compress(np.full((16, 256, 3), 128, np.uint8), 1, tiles=64)
    _, size, _ = container.read_header(data)
    head = bytearray(data[:size - 4])
    struct.pack_into("<I", head, 6, 245_760)
    hostile = bytes(head) + struct.pack("<I", zlib.crc32(bytes(head))) + data[size:]
    assert len(hostile) < 100
    f = tmp_path / "strip.lstm"
    f.write_bytes(hostile)
    r, seconds, rss = _limited("decode", f, "-o", tmp_path / "out.png")
    assert "5120 tiles" in _one_error(r) and not (tmp_path / "out.png").exists()
    assert seconds < 30 and rss < 2.0, (seconds, rss)


def test_a_large_untiled_file_decodes_region_by_region_as_a_whole():
    """Over tiling.THRESHOLD pixels an untiled file is decoded in regions with margins: the pixels of one pass."""
    codec = zoo.load_codec()
    im = np.asarray(Image.open(DATA / "parrots.png").convert("RGB"))
    d = codec.read(codec.compress(im, 6))
    whole = next(codec.reconstructions(d, every=False))
    with torch.inference_mode():
        regions = large.decode_regions(codec, d.planes, d.masks, 192, 256, side=64)
    assert np.abs(regions.astype(int) - whole).max() <= 1 and (regions != whole).mean() < 0.001


def test_writing_to_a_broken_standard_output_is_one_line(tmp_path, parrots_path, parrots_lstm):
    lstm = tmp_path / "p.lstm"
    lstm.write_bytes(parrots_lstm)
    for args in (["encode", parrots_path, "-i", "1", "-o", "-"], ["decode", lstm, "-o", "-"]):
        with open("/dev/full", "wb") as full:
            r = subprocess.run([sys.executable, "-m", "lstmcodec", *map(str, args)], stdout=full, stderr=subprocess.PIPE,
                               timeout=300)
        assert "cannot write to standard output" in _one_error(r)
        r = subprocess.run([sys.executable, "-m", "lstmcodec", *map(str, args)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=300, preexec_fn=lambda: os.close(1))
        assert "standard output is closed" in _one_error(r)


def test_out_dir_refuses_existing_files_and_colliding_names(tmp_path, parrots_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "parrots.lstm").write_bytes(b"keep")
    assert "already exists" in _one_error(run_cli("encode", parrots_path, "-i", "1", "-d", out))
    assert (out / "parrots.lstm").read_bytes() == b"keep"
    assert run_cli("encode", parrots_path, "-i", "1", "-d", out, "--force").returncode == 0
    for d in ("x1", "x2"):
        (tmp_path / d).mkdir()
        shutil.copy(parrots_path, tmp_path / d / "same.png")
    line = _one_error(run_cli("encode", tmp_path / "x1" / "same.png", tmp_path / "x2" / "same.png", "-i", "1",
                              "-d", tmp_path / "both"))
    assert "would both be written to" in line and not (tmp_path / "both" / "same.lstm").exists()


def _weights(tmp_path: Path, change) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "w.pt"
    export_codec(Codec(CodecConfig(width=0.125)), path, "w")
    blob = torch.load(path, weights_only=True)
    change(blob)
    torch.save(blob, path)
    return path


@pytest.mark.parametrize("change, message", [
    (lambda b: b.update(config=[1, 2]), "configuration and meta data must be dicts"),
    (lambda b: b.update(name=7), "model name must be printable text"),
    (lambda b: b["config"].update(width=1e6), "width must be a number in (0, 4]"),
    (lambda b: b["config"].update(bits=-5), "bits must be 1..32"),
    (lambda b: b["config"].update(bits=10 ** 9), "bits must be 1..32"),
    (lambda b: b["config"].update(bits=0), "bits must be 1..32"),
    (lambda b: b["config"].update(decoder_hidden=[4096] * 4), "over the limit of"),
    (lambda b: b["config"].update(decoder_hidden=[2 ** 20] * 4), "decoder_hidden must be four multiples of 4"),
    (lambda b: b["state_dict"].update({"decoder.conv_out.bias": torch.zeros(7)}), "do not fit its own configuration"),
])
def test_hostile_weights_files_are_one_line_before_anything_is_built(tmp_path, parrots_path, change, message):
    path = _weights(tmp_path, change)
    t0 = time.perf_counter()
    line = _one_error(run_cli("encode", parrots_path, "-i", "1", "--model", path, "-o", tmp_path / "p.lstm"))
    assert message in line and time.perf_counter() - t0 < 30 and not (tmp_path / "p.lstm").exists()


def test_a_raw_pickle_is_refused_without_torch_warnings(tmp_path, parrots_path):
    import pickle
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"format": "lstmcodec-weights/1", "x": Path(".")}))
    assert "not a loadable weights file" in _one_error(run_cli("encode", parrots_path, "--model", path, "-o", tmp_path / "e.lstm"))


def test_bad_options_are_usage_errors_of_one_line(tmp_path, parrots_path):
    for device in ("bogus", "meta", "cuda:x"):
        line = _one_error(run_cli("encode", parrots_path, "--device", device, "-o", tmp_path / "d.lstm"), code=2)
        assert "is not auto, cpu, cuda, cuda:N or mps" in line and "--help" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images found" in _one_error(run_cli("bench", empty, "--codecs", "jpeg"))


@pytest.mark.skipif(shutil.which("lstmcodec") is None, reason="the console script is not installed")
def test_ctrl_c_during_start_up_is_one_line():
    for delay in (0.15, 0.3, 0.5, 0.8):
        p = subprocess.Popen([shutil.which("lstmcodec"), "info", str(DATA / "parrots.png")], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
        assert b"Traceback" not in err, (delay, err)
        if p.returncode == 130:
            assert err.decode().strip() == "error: interrupted"


def test_decoded_pixels_do_not_depend_on_the_thread_count(tmp_path):
    """Every bundled codec decodes houses (-i 16) and a 200x120 crop of parrots (-i 4) to the same pixels at 1, 2 and
    4 threads (Decoder.project: the output layer in a fixed order of correctly rounded operations)."""
    script = ("import sys, hashlib, torch; torch.set_num_threads(int(sys.argv[1])); from lstmcodec.models import zoo\n"
              "from PIL import Image; import numpy as np\n"
              "out = []\n"
              "for name in zoo.names('codec'):\n"
              "    c = zoo.load_codec(name)\n"
              f"    for f, it, box in (('{DATA / 'houses.png'}', 16, None), ('{DATA / 'parrots.png'}', 4, (7, 11, 207, 131))):\n"
              "        im = Image.open(f).convert('RGB')\n"
              "        im = im.crop(box) if box else im\n"
              "        out.append(np.asarray(c.decompress(c.compress(im, it))).tobytes())\n"
              "print(hashlib.sha256(b''.join(out)).hexdigest())\n")
    digests = {subprocess.run([sys.executable, "-c", script, str(n)], capture_output=True, text=True, check=True,
                              timeout=600).stdout for n in (1, 2, 4)}
    assert len(digests) == 1, digests

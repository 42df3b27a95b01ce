"""The command line as a user meets it: real processes, exit codes, stderr, files on disk."""
from __future__ import annotations

import json
import struct
import zlib

import numpy as np
from PIL import Image

import lstmcodec
from lstmcodec.format import container
from lstmcodec.cli import main
from conftest import run_cli


def test_encode_decode_info_round_trip(tmp_path, parrots_path):
    src = tmp_path / "p.png"
    src.write_bytes(parrots_path.read_bytes())
    before = src.read_bytes()
    r = run_cli("encode", src, "-i", "4")
    assert r.returncode == 0, r.stderr
    assert src.read_bytes() == before  # the input is never modified
    out = tmp_path / "p.lstm"
    assert out.exists()
    r = run_cli("info", out, "--json")
    assert r.returncode == 0
    info = json.loads(r.stdout)
    assert info["file_bytes"] == out.stat().st_size  # size equals what info reports
    assert info["iterations"] == 4 and (info["width"], info["height"]) == (256, 192)
    assert abs(info["bpp"] - 8 * out.stat().st_size / (256 * 192)) < 1e-9
    r = run_cli("decode", out, "-o", tmp_path / "d.webp", "-i", "2")
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "d.webp") as im:
        assert im.format == "WEBP" and im.size == (256, 192)


def test_iterations_beyond_training_get_a_notice(tmp_path, parrots_path):
    """A model trained on 4 iterations; asking for more works but says what it buys. The default covers 24 (12 of
    its networks, then 12 linear stages), so -i 16 gets no notice and -i 26 does."""
    import torch

    from lstmcodec.training import runs as training
    from lstmcodec.coding.codec import Codec
    from lstmcodec.nets.config import CodecConfig

    torch.manual_seed(0)
    four = tmp_path / "four.pt"
    training.export_codec(Codec(CodecConfig(width=0.125, iterations=4)), four, "four")
    crop = tmp_path / "c.png"
    Image.open(parrots_path).crop((0, 0, 64, 48)).save(crop)
    r = run_cli("encode", crop, "-i", "4", "--model", four, "-o", tmp_path / "a.lstm")
    assert r.returncode == 0 and b"trained on" not in r.stderr
    r = run_cli("encode", crop, "-i", "6", "--model", four, "-o", tmp_path / "b.lstm")
    assert r.returncode == 0, r.stderr
    assert "was trained on 4 iterations; iterations 5-6 add bits" in r.stderr.decode()
    assert lstmcodec.info((tmp_path / "b.lstm").read_bytes()).iterations == 6
    r = run_cli("encode", crop, "-i", "16", "-o", tmp_path / "c.lstm")
    assert r.returncode == 0 and b"trained on" not in r.stderr, r.stderr
    r = run_cli("encode", crop, "-i", "26", "-o", tmp_path / "d.lstm")   # the default's linear tail ends at 24
    assert r.returncode == 0, r.stderr
    assert "covers 24 iterations (12 of its networks, 12 linear stages); iterations 25-26 add bits" in r.stderr.decode()


def test_default_decode_name_never_overwrites_an_existing_file(tmp_path, parrots_path):
    src = tmp_path / "p.png"
    src.write_bytes(parrots_path.read_bytes())
    assert main(["encode", str(src), "-i", "1", "-q"]) == 0
    # decoding p.lstm would default to p.png: the original photo
    assert main(["decode", str(tmp_path / "p.lstm"), "-q"]) == 1
    assert src.read_bytes() == parrots_path.read_bytes()
    assert main(["decode", str(tmp_path / "p.lstm"), "-q", "--force"]) == 0


def test_stdin_and_stdout(parrots_path):
    r = run_cli("encode", "-", "-o", "-", "-i", "2", stdin=parrots_path.read_bytes())
    assert r.returncode == 0, r.stderr
    assert r.stdout[:4] == b"LSTM"
    r2 = run_cli("decode", "-", "-o", "-", stdin=r.stdout)
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout[:8] == b"\x89PNG\r\n\x1a\n"


def test_several_inputs_to_a_folder_with_one_bad_file(tmp_path, parrots_path):
    good = tmp_path / "a.png"
    good.write_bytes(parrots_path.read_bytes())
    bad = tmp_path / "b.png"
    bad.write_bytes(b"definitely not a png")
    out = tmp_path / "out"
    r = run_cli("encode", good, bad, "-d", out, "-i", "1")
    assert r.returncode == 1
    assert (out / "a.lstm").exists() and not (out / "b.lstm").exists()
    assert "b.png" in r.stderr.decode() and "Traceback" not in r.stderr.decode()
    assert sorted(p.name for p in out.iterdir()) == ["a.lstm"]  # no temporary leftovers


def test_version_and_python_m():
    r = run_cli("--version")
    assert r.returncode == 0 and lstmcodec.__version__ in r.stdout.decode()


def test_usage_errors_exit_2(tmp_path, parrots_path):
    assert run_cli("encode").returncode == 2
    assert run_cli("encode", parrots_path, "-i", "0").returncode == 2
    assert run_cli("frobnicate").returncode == 2


def _corrupt_cases(data: bytes, png: bytes) -> dict[str, bytes]:
    fi = lstmcodec.info(data)
    meta = fi.file_bytes - sum(fi.iteration_bytes)
    flipped = bytearray(data)
    flipped[meta + fi.iteration_bytes[0] + 20] ^= 0x10
    flipped_header = bytearray(data)
    flipped_header[9] ^= 0x01
    head = container._FIXED.pack(b"LSTM", 1, 0, 10**6, 10**6, 1, 1, 0) + b"\0" * 8
    huge = head + struct.pack("<I", zlib.crc32(head))
    return {
        "truncated mid-chunk": data[: meta + fi.iteration_bytes[0] + 7],
        "truncated mid-header": data[:10],
        "one flipped byte": bytes(flipped),
        "flipped header byte": bytes(flipped_header),
        "wrong magic": b"LSTN" + data[4:],
        "empty": b"",
        "png renamed": png,
        "header claims 10^6 x 10^6": huge,
        "future version": data[:4] + b"\x09" + data[5:],
    }


def test_corrupt_inputs_fail_cleanly(tmp_path, parrots_lstm, parrots_path):
    import resource

    for name, blob in _corrupt_cases(parrots_lstm, parrots_path.read_bytes()).items():
        f = tmp_path / "bad.lstm"
        f.write_bytes(blob)
        out = tmp_path / "bad.png"
        r = run_cli("decode", f, "-o", out)
        err = r.stderr.decode()
        assert r.returncode == 1, name
        assert err.count("\n") == 1 and err.startswith("error: "), (name, err)
        assert not out.exists(), name
        assert list(tmp_path.glob(".*part")) == [], name
        assert f.read_bytes() == blob
    # and none of them allocated much: the biggest child stayed far below a 10^12-pixel image
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 3 * 1024 * 1024  # KiB -> < 3 GiB


def test_unwritable_output_leaves_nothing(tmp_path, parrots_path):
    r = run_cli("encode", parrots_path, "-o", tmp_path / "missing" / "x.lstm")
    assert r.returncode == 1 and r.stderr.decode().startswith("error: ")
    assert not (tmp_path / "missing").exists()


def test_bad_images_fail_cleanly(tmp_path):
    cases = {
        "empty.png": b"",
        "text.png": b"hello",
        "truncated.png": (lambda b: b[: len(b) // 2])(_png_bytes()),
    }
    for name, blob in cases.items():
        p = tmp_path / name
        p.write_bytes(blob)
        r = run_cli("encode", p, "-o", tmp_path / "o.lstm")
        assert r.returncode == 1, name
        assert r.stderr.decode().count("\n") == 1 and "Traceback" not in r.stderr.decode(), name
        assert not (tmp_path / "o.lstm").exists()
    r = run_cli("encode", tmp_path / "nope.png")
    assert r.returncode == 1 and "no such file" in r.stderr.decode()


def _png_bytes() -> bytes:
    import io
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_rate_control_by_bpp_size_and_quality(tmp_path, parrots_path):
    out = tmp_path / "r.lstm"
    r = run_cli("encode", parrots_path, "-o", out, "--bpp", "0.5")
    assert r.returncode == 0, r.stderr
    info = lstmcodec.info(out.read_bytes())
    assert info.bpp <= 0.5 and info.iterations == info.declared_iterations
    one_more = lstmcodec.encode(parrots_path, iterations=info.iterations + 1)
    assert 8 * len(one_more) / (256 * 192) > 0.5  # it kept the most iterations that fit
    assert b"chose" in r.stderr
    assert b"trained on" not in r.stderr  # it tried 16 iterations but kept fewer than the 8 trained
    r = run_cli("encode", parrots_path, "-o", out, "--size", "3000")
    assert r.returncode == 0 and out.stat().st_size <= 3000
    r = run_cli("encode", parrots_path, "-o", out, "--size", "10")
    assert r.returncode == 1 and b"over the budget" in r.stderr
    r = run_cli("encode", parrots_path, "-o", out, "--quality", "0.5", "-i", "6")
    assert r.returncode == 0, r.stderr
    k = lstmcodec.info(out.read_bytes()).iterations
    from lstmcodec import metrics
    src = np.asarray(Image.open(parrots_path).convert("RGB"))
    assert metrics.ms_ssim(np.asarray(lstmcodec.decode(out.read_bytes())), src) >= 0.5
    if k > 1:
        assert metrics.ms_ssim(np.asarray(lstmcodec.decode(out.read_bytes(), iterations=k - 1)), src) < 0.5
    assert run_cli("encode", parrots_path, "--bpp", "1", "--size", "100").returncode == 2


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bombs_and_truncated_jpegs_are_refused(tmp_path, parrots_path):
    import io
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_claiming(100_000, 100_000))
    buf = io.BytesIO()
    Image.open(parrots_path).convert("RGB").save(buf, "JPEG", quality=90)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    for src, expect in ((bomb, "too large"), (cut, "cannot read image")):
        for cmd in ("encode", "denoise"):
            out = tmp_path / f"out.{'lstm' if cmd == 'encode' else 'png'}"
            r = run_cli(cmd, src, "-o", out)
            err = r.stderr.decode()
            assert r.returncode == 1 and expect in err and err.count("\n") == 1, (cmd, src, err)
            assert not out.exists()


def test_ctrl_c_mid_encode_leaves_no_file(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    big = tmp_path / "big.png"
    # 4 MP of noise at -i 24 takes far longer than the 6 s before the interrupt (2 MP at -i 16 took under 6 s here)
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (2048, 2048, 3), dtype=np.uint8)).save(big)
    out = tmp_path / "big.lstm"
    # a shell's background jobs inherit SIGINT ignored; give the child the default disposition, as in a terminal
    p = subprocess.Popen([sys.executable, "-m", "lstmcodec", "encode", str(big), "-i", "24", "-o", str(out)],
                         stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(6)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert err.decode().strip().splitlines() == ["error: interrupted"]
    assert not out.exists() and list(tmp_path.glob(".*part")) == []


def test_a_file_of_retired_weights_says_which_release_decodes_it(tmp_path):
    """tests/data/fast-0.2.0-parrots-i6.lstm was made by lstmcodec 0.2.0's `fast` (fingerprint f7d5d1d469310862),
    whose weights 0.3.0 replaced under the same name: decode refuses it in one line that names the release that
    decodes it, writes nothing, and info says the same beside the model."""
    from conftest import DATA

    old = DATA / "fast-0.2.0-parrots-i6.lstm"
    out = tmp_path / "out.png"
    r = run_cli("decode", old, "-o", out)
    err = r.stderr.decode().strip()
    assert r.returncode == 1 and len(err.splitlines()) == 1 and not out.exists()
    assert err == ("error: the file was made with model 'fast' (f7d5d1d469310862), which lstmcodec "
                   f"{lstmcodec.__version__} no longer ships: lstmcodec 0.2.0 decodes it (pip install "
                   "lstmcodec==0.2.0), or pass that model's weights file with --model PATH")
    r = run_cli("info", old, "--json")
    note = json.loads(r.stdout)
    assert r.returncode == 0 and note["decodable"] is False and "lstmcodec 0.2.0 decodes it" in note["note"]
    current = json.loads(run_cli("info", DATA / "golden" / "fast-parrots-i6.lstm", "--json").stdout)
    assert current["decodable"] is True and current["note"] is None

"""bf16 inference: the choice of precision, and what it costs. Files coded in either precision decode in either,
because the bits are entropy-coded by integers; the pixels differ by bf16 rounding only."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmcodec import CodecError
from lstmcodec.models import zoo
from lstmcodec.metrics import psnr

from conftest import DATA


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(psnr(torch.from_numpy(np.asarray(a, np.float32) / 255), torch.from_numpy(np.asarray(b, np.float32) / 255)))


def test_auto_is_bf16_only_for_a_model_measured_within_the_limit_on_a_cpu_with_native_bf16(monkeypatch, tmp_path):
    """bf16 costs best 0.14 % and fast 0.24 % of Kodak BD-rate (within BF16_LIMIT): auto uses it for both on a CPU
    with native bf16, not on CUDA or for an unmeasured model; an unmeasured or costlier model stays fp32."""
    monkeypatch.delenv("LSTMCODEC_PRECISION", raising=False)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    costs = {name: entry.get("bf16_cost") for name, entry in zoo.registry()["codec"].items()}
    assert costs == {"best": 0.14, "fast": 0.24}
    monkeypatch.setattr(zoo, "native_bf16", lambda: True)
    assert zoo.resolve_precision(None, cpu, "best") == "bf16" and zoo.resolve_precision("auto", cuda, "best") == "fp32"
    assert zoo.resolve_precision("auto", cpu, "fast") == "bf16" and zoo.resolve_precision("auto", cpu, "default") == "bf16"
    assert zoo.resolve_precision("auto", cpu, str(tmp_path / "own.pt")) == "fp32"   # not measured
    assert zoo.resolve_precision("fp32", cpu, "best") == "fp32" and zoo.resolve_precision("bf16", cpu, "fast") == "bf16"
    monkeypatch.setattr(zoo, "native_bf16", lambda: False)
    assert zoo.resolve_precision("auto", cpu, "best") == "fp32" and zoo.resolve_precision("bf16", cpu, "best") == "bf16"
    monkeypatch.setenv("LSTMCODEC_PRECISION", "bf16")
    assert zoo.resolve_precision(None, cpu, "fast") == "bf16"
    monkeypatch.setenv("LSTMCODEC_PRECISION", "half")
    with pytest.raises(CodecError, match="precision must be one of auto, fp32, bf16"):
        zoo.resolve_precision(None, cpu)
    monkeypatch.delenv("LSTMCODEC_PRECISION")
    monkeypatch.setattr(zoo, "native_bf16", lambda: True)
    registry = dict(zoo.registry(), codec={"fast": dict(zoo.registry()["codec"]["fast"], bf16_cost=0.51)})
    monkeypatch.setattr(zoo, "registry", lambda: registry)
    assert zoo.resolve_precision("auto", cpu, "fast") == "fp32"   # a cost over BF16_LIMIT


def test_bf16_codes_like_fp32_and_files_cross_decode():
    """On the 256x192 photo at 6 iterations bf16 costs under 0.15 dB and 2 % of the bytes, and each precision
    decodes the other's file to within 0.15 dB of its own reconstruction."""
    from PIL import Image

    photo = np.asarray(Image.open(DATA / "parrots.png").convert("RGB"))
    fp32, bf16 = zoo.load_codec("default", precision="fp32"), zoo.load_codec("default", precision="bf16")
    assert bf16.compute_dtype == torch.bfloat16 and fp32.compute_dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in bf16.parameters())   # what the weights file holds, for exports
    assert bf16.fingerprint == fp32.fingerprint
    a, b = fp32.compress(photo, 6), bf16.compress(photo, 6)
    assert a != b and abs(len(b) - len(a)) <= 0.02 * len(a)
    q = {(enc, dec): _psnr(photo, codec.decompress(data))
         for enc, data in (("fp32", a), ("bf16", b)) for dec, codec in (("fp32", fp32), ("bf16", bf16))}
    assert q[("fp32", "fp32")] > 24
    assert abs(q[("bf16", "bf16")] - q[("fp32", "fp32")]) < 0.15
    assert abs(q[("bf16", "fp32")] - q[("bf16", "bf16")]) < 0.15 and abs(q[("fp32", "bf16")] - q[("fp32", "fp32")]) < 0.15


def test_bf16_keeps_the_cell_state_in_fp32_and_decodes_closer_to_fp32():
    """The LSTM cell state sums over all iterations: bf16 inference keeps it in fp32. Decoding the same 16-iteration
    file, bf16's pixels then agree with fp32's to 51.9 dB PSNR, 49.4 dB with the cell state rounded to bf16 too (on an
    AVX512-BF16 CPU; the bounds leave room for other CPUs' bf16 kernels)."""
    from PIL import Image

    photo = np.asarray(Image.open(DATA / "parrots.png").convert("RGB"))
    fp32, bf16 = zoo.load_codec("default", precision="fp32"), zoo.load_codec("default", precision="bf16")
    cells = [*bf16.encoder.rnns, *bf16.decoder.rnns]
    assert all(c.fp32_state for c in cells)
    data = fp32.compress(photo, 16)
    reference = fp32.decompress(data)
    kept = _psnr(reference, bf16.decompress(data))
    try:
        for c in cells:
            c.fp32_state = False
        rounded = _psnr(reference, bf16.decompress(data))
    finally:
        for c in cells:
            c.fp32_state = True
    assert kept > 50.5 and kept > rounded + 1.0


def test_bf16_decodes_the_same_pixels_on_any_thread_count():
    codec = zoo.load_codec("default", precision="bf16")
    data = codec.compress(DATA / "parrots.png", 4)
    threads = torch.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            outs.append(np.asarray(codec.decompress(data)))
    finally:
        torch.set_num_threads(threads)
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


def test_the_command_line_takes_a_precision(tmp_path):
    from click.testing import CliRunner

    from lstmcodec.cli import cli

    runner = CliRunner()
    try:
        for p in ("fp32", "bf16"):
            out = tmp_path / f"{p}.lstm"
            r = runner.invoke(cli, ["encode", str(DATA / "parrots.png"), "-i", "2", "-o", str(out), "--precision", p])
            assert r.exit_code == 0, r.output
            r = runner.invoke(cli, ["decode", str(out), "-o", str(tmp_path / f"{p}.png"), "--precision", "fp32"])
            assert r.exit_code == 0, r.output
        assert (tmp_path / "fp32.lstm").read_bytes() != (tmp_path / "bf16.lstm").read_bytes()
        r = runner.invoke(cli, ["encode", str(DATA / "parrots.png"), "-o", str(tmp_path / "x.lstm"), "--precision", "fp16"])
        assert r.exit_code == 2 and "'fp16' is not one of" in r.output
    finally:
        zoo.set_default_precision(None)

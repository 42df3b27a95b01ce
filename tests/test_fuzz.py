"""A quick subset of the decoder fuzz job (the long one: `python -m lstmcodec.fuzz --runs 100000`)."""
from __future__ import annotations

import random

import pytest

from lstmcodec import container, fuzz

from conftest import run_cli


@pytest.fixture(scope="module")
def seeds():
    return fuzz.seed_files()


def test_fuzz_inputs_decode_or_raise_codec_error_quickly(seeds):
    rep = fuzz.run(300, seed=12345, seeds=seeds)
    assert rep.findings == []
    assert rep.refused > 0 and rep.decoded > 0  # the inputs reach both outcomes
    assert {"flip+crc", "header", "splice", "truncate"} <= set(rep.by_kind)


def test_repaired_crcs_reach_past_the_checksums(seeds):
    """A flipped payload bit with its CRC repaired is no longer caught by the CRC check."""
    data = bytearray(seeds[0])
    data[-10] ^= 0x10
    with pytest.raises(Exception, match="CRC"):
        container.read(bytes(data))
    container.read(fuzz.repair_crcs(bytes(data)))  # parses: the damage now reaches the entropy decoder


def test_cli_never_prints_a_traceback_on_fuzzed_files(tmp_path, seeds):
    rng = random.Random(7)
    for k in range(8):
        kind, data = fuzz.mutate(rng, seeds)
        f = tmp_path / f"f{k}.lstm"
        f.write_bytes(data)
        r = run_cli("decode", f, "-o", tmp_path / f"f{k}.png")
        assert r.returncode in (0, 1), (kind, r.stderr)
        assert b"Traceback" not in r.stderr
        if r.returncode == 1:
            assert len(r.stderr.decode().strip().splitlines()) == 1
            assert not (tmp_path / f"f{k}.png").exists()


def test_pixel_cap_is_configurable(tmp_path, seeds):
    import os
    import subprocess
    import sys
    f = tmp_path / "a.lstm"
    f.write_bytes(seeds[0])  # 56 x 40 = 2240 pixels
    env = dict(os.environ, LSTMCODEC_MAX_PIXELS="1000")
    r = subprocess.run([sys.executable, "-m", "lstmcodec", "decode", str(f), "-o", str(tmp_path / "a.png")],
                       capture_output=True, env=env)
    assert r.returncode == 1 and b"exceeds the limit of 1000 pixels" in r.stderr


def test_decoding_does_not_depend_on_the_thread_count(tmp_path, parrots_lstm):
    """The bits are integer-decoded; the pixels then agree across thread counts (to rounding at most)."""
    import os
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    f = tmp_path / "p.lstm"
    f.write_bytes(parrots_lstm)
    outs = []
    for threads in ("1", "2"):
        out = tmp_path / f"p{threads}.png"
        env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        r = subprocess.run([sys.executable, "-m", "lstmcodec", "decode", str(f), "-o", str(out)], capture_output=True, env=env)
        assert r.returncode == 0, r.stderr
        outs.append(np.asarray(Image.open(out)).astype(int))
    assert np.abs(outs[0] - outs[1]).max() <= 1

"""A quick subset of the decoder fuzz job (the long one: `python -m lstmcodec.evaluation.fuzz --runs 100000`)."""
from __future__ import annotations

import random

import pytest

from lstmcodec.format import container
from lstmcodec.evaluation import fuzz

from conftest import run_cli


@pytest.fixture(scope="module")
def seeds():
    return fuzz.seed_files()


def test_fuzz_inputs_decode_or_raise_codec_error_quickly(seeds):
    # 60 s, not the fuzz job's 5 s: on a loaded machine a real 1 s decode can take 12; what this catches is a header
    # that slips past the work budget and runs for minutes (the 5 s limit is the long job's, on a quiet machine)
    rep = fuzz.run(400, seed=12345, seeds=seeds, time_limit_s=60.0)
    assert rep.findings == []
    assert rep.refused > 0 and rep.decoded > 0  # the inputs reach both outcomes
    assert {"flip+crc", "header", "splice", "truncate"} <= set(rep.by_kind)
    kinds = {k.split("-")[0] for k in rep.by_kind}
    assert {"image", "weights"} <= kinds  # the corpus-style cases: image files and weights files


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
    f.write_bytes(seeds[0])  # 56 x 40 = 2240 pixels (64 x 48 after padding)
    env = dict(os.environ, LSTMCODEC_MAX_PIXELS="1000")
    r = subprocess.run([sys.executable, "-m", "lstmcodec", "decode", str(f), "-o", str(tmp_path / "a.png")],
                       capture_output=True, env=env)
    assert r.returncode == 1 and b"exceeds the limit of 1000 pixels" in r.stderr

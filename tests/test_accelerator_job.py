"""The accelerator job rehearsed on the CPU: a few seconds of fine-tuning the default codec on small images export
weights that `lstmcodec encode --model` takes, a log with the held-back validation before and after, and a
checkpoint from which a second job continues."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import DATA, run_cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """20 photos of 64 x 64 (so that one is held back for validation)."""
    folder = tmp_path_factory.mktemp("photos")
    for i in range(20):
        src = Image.open(DATA / ("parrots.png" if i % 2 else "houses.png")).convert("RGB")
        src.crop((8 * i % 96, 4 * i % 96, 8 * i % 96 + 64, 4 * i % 96 + 64)).save(folder / f"{i:02d}.png")
    return folder


def _job(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.accelerator_job", "--task", "codec", "--recipe",
                           "recipes/fast.toml", "--device", "cpu", "--minutes", "0.05", "--batch", "2", "--crop", "32",
                           "--table-images", "4", "--table-k", "2", "--mixer-images", "0", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_the_job_exports_weights_a_log_and_a_checkpoint_and_resumes(tmp_path, photos, parrots_path):
    r = _job("--data", photos, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr[-3000:]
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["checkpoint.pt", "fast.pt", "log.json"], files
    log = json.loads((tmp_path / "out" / "log.json").read_text())
    before, after = log["validation_before"], log["validation_after"]
    assert before["step"] == 0 and after["step"] == log["steps"] > 0
    for t in (1, 2, 4, 8, 16):
        assert 0 < before[f"msssim_i{t}"] <= 1 and 0 < after[f"msssim_i{t}"] <= 1
    assert log["steps_per_s"] > 0 and log["loss"] and log["options"]["schedule-over"] == "time"
    # by default the trained network keeps the bundled model's entropy table and mixer (relearned later on a CPU)
    import torch

    made = torch.load(tmp_path / "out" / "fast.pt", weights_only=True)
    shipped = torch.load(ROOT / "weights" / "fast.pt", weights_only=True)
    assert torch.equal(made["entropy_prior"], shipped["entropy_prior"]) and "entropy_mixer" in made
    assert "kept" in log["tables"]
    r = run_cli("encode", parrots_path, "-i", "4", "--model", tmp_path / "out" / "fast.pt", "-o", tmp_path / "p.lstm")
    assert r.returncode == 0, r.stderr
    r = run_cli("decode", tmp_path / "p.lstm", "--model", tmp_path / "out" / "fast.pt", "-o", tmp_path / "p.png")
    assert r.returncode == 0, r.stderr

    r = _job("--data", photos, "--out", tmp_path / "again", "--resume", tmp_path / "out", "--tables", "learn",
             "--throughput", photos)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in r.stderr
    again = json.loads((tmp_path / "again" / "log.json").read_text())
    assert again["steps"] > log["steps"]
    # --throughput: the bundled model's images per second at -i 16 on a folder, after the weights are written
    assert re.fullmatch(r"fast \((fp32|bf16)\) on cpu, batches of up to 1: 20 images of .* at -i 16: encode [\d.]+, "
                        r"decode [\d.]+ images per second", again["throughput"]), again["throughput"]

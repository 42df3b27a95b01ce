"""The size limits: what git tracks (<= 30 MiB, so that a clone and the training set travel in 64 MiB), each
weights file (<= 16 MiB), at most 3 codec models, the wheel (<= 40 MB, under the package index's 100 MB)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_the_repository_the_weights_the_zoo_and_the_wheel_are_within_their_limits():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "sizes.py"), "--wheel"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert any(line.startswith("ok  tracked files") for line in lines)
    assert any(line.startswith("ok  wheel") for line in lines)
    assert sum(line.startswith("ok  weights/") for line in lines) >= 3

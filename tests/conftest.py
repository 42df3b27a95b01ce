from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def parrots_path() -> Path:
    return DATA / "parrots.png"


@pytest.fixture(scope="session")
def parrots(parrots_path) -> np.ndarray:
    return np.asarray(Image.open(parrots_path).convert("RGB"))


@pytest.fixture(scope="session")
def houses() -> np.ndarray:
    return np.asarray(Image.open(DATA / "houses.png").convert("RGB"))


@pytest.fixture(scope="session")
def parrots_lstm(parrots) -> bytes:
    import lstmcodec
    return lstmcodec.encode(parrots, iterations=8)


def run_cli(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real command line in a fresh process, so tracebacks and exit codes are what a user sees."""
    return subprocess.run([sys.executable, "-m", "lstmcodec", *map(str, args)], input=stdin,
                          capture_output=True, cwd=cwd, timeout=300)

from __future__ import annotations

import gzip
import struct
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


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> Path:
    """The 200 shipped MNIST digits as idx files, 150 for training, 50 for testing."""
    z = np.load(DATA / "mnist-test-200.npz")
    d = tmp_path_factory.mktemp("mnist")
    for prefix, part in (("train", slice(0, 150)), ("t10k", slice(150, 200))):
        for kind, arr in (("images-idx3", z["images"][part]), ("labels-idx1", z["labels"][part].astype(np.uint8))):
            raw = struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
            (d / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(raw))
    return d


def run_cli(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real command line in a fresh process, so tracebacks and exit codes are what a user sees."""
    return subprocess.run([sys.executable, "-m", "lstmcodec", *map(str, args)], input=stdin,
                          capture_output=True, cwd=cwd, timeout=300)

"""A training run's files: atomic checkpoints, the run's log (CSV, mirrored to TensorBoard when the tensorboard
package is installed), and its progress lines on stderr. Part of the runtime (runtime.py re-exports them)."""
from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import torch

from lstmcodec.io.files import atomic_save  # noqa: F401 (re-exported: runtime.atomic_save)


# ----------------------------------------------------------------------------- checkpoints


def load_checkpoint(path: str | os.PathLike) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


# ----------------------------------------------------------------------------- logging


class CSVLog:
    """Appends dict rows to a CSV file; new keys extend the header (the file is rewritten once)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows: list[dict] = []
        if self.path.exists():
            with open(self.path, newline="") as f:
                self.rows = list(csv.DictReader(f))

    def write(self, row: dict) -> None:
        self.rows.append({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)
        os.replace(tmp, self.path)


class RunLog(CSVLog):
    """A run's log: OUT/log.csv, and the same numbers as TensorBoard scalars in OUT/tensorboard when the
    tensorboard package is installed (torch's SummaryWriter needs it; without it the CSV alone)."""

    def __init__(self, out_dir: str | os.PathLike):
        super().__init__(Path(out_dir) / "log.csv")
        self.tensorboard = _tensorboard_writer(Path(out_dir) / "tensorboard")

    def write(self, row: dict) -> None:
        super().write(row)
        if self.tensorboard is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tensorboard.add_scalar(key, value, int(row["step"]))
            self.tensorboard.flush()


def _tensorboard_writer(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # no tensorboard package
        return None
    return SummaryWriter(str(path))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)

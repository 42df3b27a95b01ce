"""Datasets for the training scripts: random crops from image folders (codec, colour denoiser).

Every sampler is a pure function of (seed, step) -> batch, which is what makes resume exact.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}


def list_images(folders: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            files.append(folder)
            continue
        if not folder.is_dir():
            raise FileNotFoundError(f"no such image folder: {folder}")
        files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images found in {', '.join(map(str, folders))}")
    return files


def split_holdout(files: Sequence[Path], every: int = 20) -> tuple[list[Path], list[Path]]:
    """A deterministic held-back split: every `every`-th file (by sorted name) is for validation."""
    files = sorted(files)
    val = files[every - 1::every] if every > 0 else []
    train = [f for f in files if f not in set(val)]
    return train, val


def load_rgb(path: str | Path) -> torch.Tensor:
    """An image file as a 3 x H x W uint8 tensor."""
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-0.5, 0.5], the codec's input range."""
    return x.float() / 255.0 - 0.5


class RandomCrops:
    """Random square crops with flips from images held in memory.

    `hard` in [0, 1): the fraction of candidate crops thrown away as too easy. The sampler
    draws batch / (1 - hard) candidates and keeps the ones with the most gradient energy
    (a cheap stand-in for "the patches PNG compresses worst" of Toderici et al.).
    """

    def __init__(self, images: Sequence[torch.Tensor], size: int, batch: int, seed: int = 0, hard: float = 0.0):
        self.images = [im for im in images if im.shape[1] >= size and im.shape[2] >= size]
        if not self.images:
            raise ValueError(f"no image is at least {size}x{size}")
        self.size, self.batch, self.seed, self.hard = size, batch, seed, hard

    def __call__(self, step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        n = max(self.batch, int(round(self.batch / (1 - self.hard)))) if self.hard > 0 else self.batch
        which = torch.randint(len(self.images), (n,), generator=g)
        crops = []
        for i in which.tolist():
            im = self.images[i]
            y = int(torch.randint(im.shape[1] - self.size + 1, (1,), generator=g))
            x = int(torch.randint(im.shape[2] - self.size + 1, (1,), generator=g))
            crops.append(im[:, y:y + self.size, x:x + self.size])
        batch = torch.stack(crops)
        if n > self.batch:
            f = batch.float()
            energy = (f[..., 1:, :] - f[..., :-1, :]).abs().mean((1, 2, 3)) + (f[..., 1:] - f[..., :-1]).abs().mean((1, 2, 3))
            batch = batch[energy.argsort(descending=True)[: self.batch]]
        flip_h = torch.rand(self.batch, generator=g) < 0.5
        flip_v = torch.rand(self.batch, generator=g) < 0.5
        batch[flip_h] = batch[flip_h].flip(-1)
        batch[flip_v] = batch[flip_v].flip(-2)
        return to_unit(batch)

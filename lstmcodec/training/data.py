"""Datasets for the training scripts: random crops from image folders (codec, colour denoiser),
MNIST / CIFAR-10 / class folders (classifier, small denoisers), augmentation and noise models.

Every sampler is a pure function of (seed, step) -> batch, which is what makes resume exact.
"""
from __future__ import annotations

import gzip
import io
import math
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from lstmcodec.io.files import IMAGE_SUFFIXES, list_images  # noqa: F401 (data.list_images: what the scripts train on)


def split_holdout(files: Sequence[Path], every: int = 20) -> tuple[list[Path], list[Path]]:
    """A deterministic held-back split: every `every`-th file (by sorted name) is for validation."""
    files = sorted(files)
    val = files[every - 1::every] if every > 0 else []
    train = [f for f in files if f not in set(val)]
    return train, val


# The held-back photographs (split_holdout of bsds432) with the most saturated colour times the finest texture
# (Hasler and Süsstrunk's colourfulness times the mean absolute gradient): the colourful set that every bench
# reports beside Kodak. No bundled model was trained on them.
COLOURFUL = ("113044.jpg", "259060.jpg", "228076.jpg", "376020.jpg", "169012.jpg", "145079.jpg", "311081.jpg",
             "65074.jpg")


def colourful(folder: str | Path) -> list[Path]:
    """The colourful held-back photographs of a bsds432 folder (COLOURFUL), checked to be held back there."""
    files = list_images([folder])
    held = {f.name for f in split_holdout(files)[1]}
    chosen = [f for f in files if f.name in COLOURFUL]
    if len(chosen) != len(COLOURFUL) or not all(f.name in held for f in chosen):
        raise FileNotFoundError(f"{folder} is not the bsds432 folder the colourful set comes from")
    return chosen


def load_rgb(path: str | Path) -> torch.Tensor:
    """An image file as a 3 x H x W uint8 tensor."""
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def center_crop(im: torch.Tensor, size: int) -> torch.Tensor:
    """The central size x size crop of a C x H x W image (smaller where the image is)."""
    h, w = im.shape[1:]
    size = min(size, h, w)
    y, x = (h - size) // 2, (w - size) // 2
    return im[:, y:y + size, x:x + size]


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-0.5, 0.5], the codec's input range."""
    return x.float() / 255.0 - 0.5


def as_8bit(y: torch.Tensor) -> torch.Tensor:
    """A [0, 1] image as an 8-bit file holds it: clipped, on the 256 levels."""
    return y.clamp(0, 1).mul(255).round().div(255)


class RandomCrops:
    """Random square crops with flips (and, with `rotate`, transposes: all eight rotations and mirror images)
    from images held in memory.

    `hard` in [0, 1): the fraction of candidate crops thrown away as too easy. The sampler
    draws batch / (1 - hard) candidates and keeps the ones with the most gradient energy
    (a cheap stand-in for "the patches PNG compresses worst" of Toderici et al.).
    `device`: where the images are held and the crops cut (a GPU: the training set is uploaded once, and no
    batch crosses the bus); the random draws are the same on every device.
    """

    def __init__(self, images: Sequence[torch.Tensor], size: int, batch: int, seed: int = 0, hard: float = 0.0,
                 device: torch.device | str = "cpu", rotate: bool = False):
        self.images = [im.to(device) for im in images if im.shape[1] >= size and im.shape[2] >= size]
        if not self.images:
            raise ValueError(f"no image is at least {size}x{size}")
        self.size, self.batch, self.seed, self.hard, self.rotate = size, batch, seed, hard, rotate

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
        flip_h = (torch.rand(self.batch, generator=g) < 0.5).to(batch.device)
        flip_v = (torch.rand(self.batch, generator=g) < 0.5).to(batch.device)
        batch[flip_h] = batch[flip_h].flip(-1)
        batch[flip_v] = batch[flip_v].flip(-2)
        if self.rotate:
            turn = (torch.rand(self.batch, generator=g) < 0.5).to(batch.device)
            batch[turn] = batch[turn].transpose(-1, -2)
        return to_unit(batch)


# ----------------------------------------------------------------------------- labelled image sets


@dataclass
class Labelled:
    """A labelled image set held in memory: uint8 images N x C x H x W, int64 labels N, class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def load_mnist(folder: str | Path, split: str = "train") -> Labelled:
    """MNIST from the standard idx files (gzipped or not): train-* or t10k-*."""
    prefix = {"train": "train", "test": "t10k"}[split]
    images = _read_idx(_find(Path(folder), f"{prefix}-images-idx3-ubyte"), 3)
    labels = _read_idx(_find(Path(folder), f"{prefix}-labels-idx1-ubyte"), 1)
    if len(images) != len(labels):
        raise ValueError(f"MNIST {split}: {len(images)} images but {len(labels)} labels")
    return Labelled(images.unsqueeze(1), labels.long(), [str(d) for d in range(10)])


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder}: no {stem}[.gz]")


def _read_idx(path: Path, ndim: int) -> torch.Tensor:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    magic, = struct.unpack(">I", raw[:4])
    if magic != 0x0800 | ndim:
        raise ValueError(f"{path}: not an idx file of unsigned bytes with {ndim} dimension(s)")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    if len(body) != math.prod(dims):
        raise ValueError(f"{path}: {len(body)} bytes of data, the header says {math.prod(dims)}")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(dims)


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def load_cifar10(path: str | Path, split: str = "train") -> Labelled:
    """CIFAR-10 from the official `cifar-10-batches-py` pickles, a folder `train|test/<class>/*.png`, or a zip of it."""
    path = Path(path)
    if path.is_dir() and (path / "cifar-10-batches-py").is_dir():
        path = path / "cifar-10-batches-py"
    if path.is_dir() and (path / "batches.meta").is_file():
        return _cifar_pickles(path, split)
    if path.is_dir():
        return load_image_folder(path / split, size=32, classes=CIFAR10_CLASSES)
    if path.suffix == ".zip":
        return _cifar_zip(path, split)
    raise FileNotFoundError(f"{path}: neither cifar-10-batches-py, an image folder nor a zip")


class _SafeUnpickler(pickle.Unpickler):
    """Only what the CIFAR pickles need (numpy arrays); anything else is refused, so a file cannot run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        d = _SafeUnpickler(f, encoding="bytes").load()
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def _cifar_pickles(folder: Path, split: str) -> Labelled:
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    parts = [_unpickle(folder / n) for n in names]
    images = torch.from_numpy(np.concatenate([np.asarray(p["data"], dtype=np.uint8) for p in parts]).reshape(-1, 3, 32, 32))
    labels = torch.tensor([int(v) for p in parts for v in p["labels"]])
    meta = _unpickle(folder / "batches.meta")
    classes = [c.decode() if isinstance(c, bytes) else c for c in meta["label_names"]]
    return Labelled(images, labels, classes)


def _cifar_zip(path: Path, split: str) -> Labelled:
    images, labels = [], []
    with zipfile.ZipFile(path) as z:
        for name in sorted(z.namelist()):
            parts = name.split("/")
            if len(parts) < 3 or not name.lower().endswith(".png") or parts[-3] != split or parts[-2] not in CIFAR10_CLASSES:
                continue
            with Image.open(io.BytesIO(z.read(name))) as im:
                images.append(np.asarray(im.convert("RGB")))
            labels.append(CIFAR10_CLASSES.index(parts[-2]))
    if not images:
        raise FileNotFoundError(f"{path}: no {split}/<class>/*.png inside")
    return Labelled(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels), CIFAR10_CLASSES)


def load_image_folder(folder: str | Path, size: int, classes: Sequence[str] | None = None, gray: bool = False) -> Labelled:
    """One sub-folder per class; every image is resized to size x size (RGB, or L with gray=True)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such image folder: {folder}")
    classes = list(classes) if classes else sorted(d.name for d in folder.iterdir() if d.is_dir())
    images, labels = [], []
    for k, c in enumerate(classes):
        for f in sorted(p for p in (folder / c).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
            with Image.open(f) as im:
                im = im.convert("L" if gray else "RGB")
                if im.size != (size, size):
                    im = im.resize((size, size), Image.Resampling.BICUBIC)
                a = np.asarray(im)
            images.append(a[None] if gray else a.transpose(2, 0, 1))
            labels.append(k)
    if not images:
        raise FileNotFoundError(f"no images found in {folder}/<class>/")
    return Labelled(torch.from_numpy(np.stack(images)), torch.tensor(labels), classes)


class EpochBatches:
    """Shuffled mini-batches over N items, epoch after epoch: step -> indices, a pure function of (seed, step).
    shuffle=False visits the items in their order every epoch."""

    def __init__(self, n: int, batch: int, seed: int = 0, shuffle: bool = True):
        if n < batch:
            raise ValueError(f"{n} items are fewer than one batch of {batch}")
        self.n, self.batch, self.seed, self.shuffle = n, batch, seed, shuffle
        self.steps_per_epoch = n // batch
        self._epoch, self._perm = -1, None

    def __call__(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)) \
                if self.shuffle else torch.arange(self.n)
        return self._perm[i * self.batch:(i + 1) * self.batch]


def augment(x: torch.Tensor, g: torch.Generator, translate: int = 0, flip: bool = False) -> torch.Tensor:
    """Random translation by up to `translate` pixels (zero fill) and horizontal flips, per image, vectorised."""
    n, _, h, w = x.shape
    if translate:
        p = translate
        xp = torch.nn.functional.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (n,), generator=g).to(x.device)
        dx = torch.randint(0, 2 * p + 1, (n,), generator=g).to(x.device)
        ar_h, ar_w = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
        rows = (dy[:, None] + ar_h)[:, :, None]
        cols = (dx[:, None] + ar_w)[:, None, :]
        x = xp[torch.arange(n, device=x.device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    if flip:
        f = (torch.rand(n, generator=g) < 0.5).to(x.device)
        x = torch.where(f[:, None, None, None], x.flip(-1), x)
    return x.contiguous()


# ----------------------------------------------------------------------------- noise models (images in [0, 1])


@dataclass
class Noise:
    """A noise model. kind: gaussian | speckle | salt-pepper | poisson | mix | halves | none.

    mix: each image gaussian or speckle at random; halves: the first half of the images (in order) gaussian,
    the second half speckle (the MNIST experiment's protocol, applied once to a whole split); none: no noise
    (a plain autoencoder).

    gaussian: mean and variance on the 0-255 scale; sigma_max > 0 makes it blind (std drawn uniformly
    in [sigma_min, sigma_max] per image, mean 0). speckle: x + x * n * scale, n ~ N(0, 1).
    salt-pepper: a fraction `amount` of pixels set to 0 or 1. poisson: Poisson(x * peak) / peak.
    """

    kind: str = "gaussian"
    mean: float = 0.0
    var: float = 625.0
    sigma_min: float = 0.0
    sigma_max: float = 0.0
    scale: float = 1.0
    amount: float = 0.05
    peak: float = 30.0
    clip: bool = True
    round: bool = False  # clip and round to 8 bits, as a noisy photograph saved to a file is
    round_fraction: float = 1.0  # with round: the share of the images (drawn per image) that are rounded

    KINDS = ("gaussian", "speckle", "salt-pepper", "poisson", "mix", "halves", "none")

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        kind = self.kind
        if kind not in self.KINDS:
            raise ValueError(f"unknown noise '{kind}' (one of {', '.join(self.KINDS)})")
        if kind == "none":
            return x.clone()
        if kind in ("mix", "halves"):
            if kind == "mix":
                half = torch.rand(len(x), generator=g) < 0.5
            else:
                half = torch.arange(len(x)) < (len(x) + 1) // 2
            a = Noise(**{**self.__dict__, "kind": "gaussian"})(x, g)
            b = Noise(**{**self.__dict__, "kind": "speckle"})(x, g)
            return torch.where(half[:, None, None, None], a, b)
        if kind == "gaussian":
            if self.sigma_max > 0:
                sigma = self.sigma_min + (self.sigma_max - self.sigma_min) * torch.rand(len(x), 1, 1, 1, generator=g)
                y = x + sigma / 255 * torch.randn(x.shape, generator=g)
            else:
                y = x + (self.mean + math.sqrt(self.var) * torch.randn(x.shape, generator=g)) / 255
        elif kind == "speckle":
            y = x + x * torch.randn(x.shape, generator=g) * self.scale
        elif kind == "salt-pepper":
            u = torch.rand(x.shape, generator=g)
            y = torch.where(u < self.amount / 2, 0.0, torch.where(u > 1 - self.amount / 2, 1.0, x))
        else:
            y = torch.poisson(x.clamp(min=0) * self.peak, generator=g) / self.peak
        if self.round:
            photo = as_8bit(y)
            if self.round_fraction >= 1:
                return photo
            which = torch.rand(len(x), generator=g) < self.round_fraction
            return torch.where(which[:, None, None, None], photo, y)
        return y.clamp(0, 1) if self.clip else y


if __name__ == "__main__":  # python -m lstmcodec.training.data colourful FOLDER: the colourful held-back set's paths
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "colourful":
        sys.exit("usage: python -m lstmcodec.training.data colourful BSDS432_FOLDER")
    try:
        print(" ".join(str(f) for f in colourful(sys.argv[2])))
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")

"""Many images through one codec: images (or files) of one padded size go through the networks as one batch
(Codec.encode_planes_batch, Codec.reconstruct_batch), up to `batch` at a time; the files and pixels are those of one
image at a time (on CUDA, whose convolution algorithms may depend on the batch, a bit near zero may come out the
other way). Images large enough to be tiled are coded alone."""
from __future__ import annotations

from typing import Callable, Iterator

import torch
from PIL import Image

from lstmcodec.format import tiling
from lstmcodec.coding.framing import EncodeResult
from lstmcodec.coding.tensors import check_iteration_count
from lstmcodec.errors import CodecError
from lstmcodec.geometry import padded
from lstmcodec.io.imageio import SourceImage, open_image, prepare

BATCH = 16     # images of one size the networks take at once on CUDA ...
BATCH_PIXELS = BATCH * 768 * 512   # ... and at most this many pixels (16 Kodak images, 3 of the largest untiled)


def default_batch(device: torch.device) -> int:
    """Images the networks take at once by default: BATCH on CUDA, 1 elsewhere (on the CPU one image at a time is
    faster: its large tensors are cut into bands that stay in cache)."""
    return BATCH if device.type == "cuda" else 1


def batch_size(codec, batch: int | None) -> int:
    """The batch size a call asked for, or the codec's device's default; refuses one under 1."""
    batch = default_batch(codec.device) if batch is None else batch
    if batch < 1:
        raise CodecError("batch must be at least 1")
    return batch


def groups(items: list, batch: int, size: Callable) -> Iterator[list[int]]:
    """Indices of `items` in groups of at most `batch` (and BATCH_PIXELS pixels) that share a padded size and are
    not tiled (each tiled one, or one over the pixel cap, alone; its own call reports what is wrong with it)."""
    by_size: dict[tuple, list[int]] = {}
    for i, item in enumerate(items):
        h, w = size(item)
        key = (padded(h), padded(w))
        if batch == 1 or key[0] * key[1] > tiling.THRESHOLD:
            yield [i]
        else:
            by_size.setdefault(key, []).append(i)
    for (h, w), members in by_size.items():
        n = max(1, min(batch, BATCH_PIXELS // (h * w)))
        for k in range(0, len(members), n):
            yield members[k:k + n]


def compress_many(codec, images, iterations: int = 8, batch: int | None = None) -> list[bytes]:
    """codec.compress() of several images (each a path, bytes, PIL image or array), the networks running on up to
    `batch` images of the same padded size at once (default: BATCH on CUDA, 1 on the CPU). On the CPU each file is
    byte for byte the one compress() writes."""
    return [r.data for r in encode_sources(codec, [prepare(open_image(i)) for i in images], iterations, batch)]


def encode_sources(codec, sources: list[SourceImage], iterations: int = 8, batch: int | None = None
                   ) -> list[EncodeResult]:
    """compress_many() of prepared images, with each one's notices. Images large enough to be tiled are coded
    one at a time (Codec.encode_source)."""
    check_iteration_count(iterations)
    batch = batch_size(codec, batch)
    results: list[EncodeResult | None] = [None] * len(sources)
    for group in groups(sources, batch, lambda s: s.rgb.shape[:2]):
        if len(group) == 1:
            results[group[0]] = codec.encode_source(sources[group[0]], iterations)
            continue
        coded = codec.encode_planes_batch([sources[i].rgb for i in group], iterations)
        for i, (planes, masks) in zip(group, coded):
            results[i] = codec.entropy_code(sources[i], planes, masks, iterations)
    return results


def decompress_many(codec, files: list, iterations: int | None = None, batch: int | None = None
                    ) -> list[Image.Image]:
    """codec.decompress() of several files (bytes or paths), the decoder running on up to `batch` images at once
    where files share their padded size, iteration count and tail (default: BATCH on CUDA, 1 on the CPU). Every file
    is read and entropy-decoded before any pixel; each image is the one decompress() gives, to float rounding."""
    decoded = [codec.read(f, iterations) for f in files]
    batch = batch_size(codec, batch)
    images: list[Image.Image | None] = [None] * len(decoded)
    keys = [(len(d.planes), d.tail) if d.plan is None else None for d in decoded]
    for group in groups(list(range(len(decoded))), batch, lambda i: (decoded[i].header.height, decoded[i].header.width)):
        for sub in _by_key(group, keys):   # within a size group, only files with the same plane count and tail
            if len(sub) == 1:
                d = decoded[sub[0]]
                images[sub[0]] = d.image(next(codec.reconstructions(d, every=False)))
            else:
                for i, rgb in zip(sub, codec.reconstruct_batch([decoded[i] for i in sub])):
                    images[i] = decoded[i].image(rgb)
    return images


def _by_key(group: list[int], keys: list) -> Iterator[list[int]]:
    """A size group's files by key (plane count and tail); a file without a key (tiled) alone."""
    by_key: dict = {}
    for i in group:
        if keys[i] is None:
            yield [i]
        else:
            by_key.setdefault(keys[i], []).append(i)
    yield from by_key.values()

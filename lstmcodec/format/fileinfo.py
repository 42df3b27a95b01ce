"""What a .lstm file holds, read without a network (no torch here): size, mode, iterations, bytes per
iteration, bits per pixel, model, and an adaptive file's iteration map."""
from __future__ import annotations

import os

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from lstmcodec.format import container
from lstmcodec.format import tiling
from lstmcodec.errors import CodecError
from lstmcodec.geometry import BLOCK, blocks, padded
from lstmcodec.format.itermap import decode_map


@dataclass
class FileInfo:
    width: int
    height: int
    mode: str
    iterations: int               # iteration chunks present
    declared_iterations: int      # iteration chunks the encoder wrote
    model: str
    fingerprint: str
    file_bytes: int
    header_bytes: int
    iteration_bytes: list[int]    # each iteration chunk, framing included
    bpp: float                    # whole file
    bpp_per_iteration: list[float]  # cumulative: the file truncated after k iterations (container.truncate)
    tile: int | None = None                        # adaptive files: tile side in pixels
    tile_iterations: list[list[int]] | None = None  # adaptive files: the iteration map, one row per tile row
    tiles: dict | None = None                       # tiled files: {"side", "overlap", "rows", "columns"} of the tiles

    def to_dict(self) -> dict:
        return asdict(self)


def info(data) -> FileInfo:
    """What a .lstm file (bytes or a path) holds."""
    if isinstance(data, (str, os.PathLike)):
        from lstmcodec.io.files import read_file
        data = read_file(data)
    f = container.read(bytes(data))
    hd, px = f.header, f.header.width * f.header.height
    meta = len(data) - sum(f.chunk_sizes)
    cumulative = np.cumsum(f.chunk_sizes) + meta
    fi = FileInfo(hd.width, hd.height, hd.mode, len(f.iterations), hd.iterations, hd.model, hd.fingerprint.hex(),
                  len(data), f.header_size, list(f.chunk_sizes), 8 * len(data) / px,
                  [float(8 * c / px) for c in cumulative])
    if f.iteration_map is not None:
        counts, tile = decode_map(f.iteration_map, blocks(hd.height, hd.width))
        fi.tile, fi.tile_iterations = tile * BLOCK, counts.tolist()
        # the file of the first k iterations holds the map with its counts capped at k (container.truncate)
        fi.bpp_per_iteration = [8 * len(container.truncate(data, k)) / px for k in range(1, len(f.iterations))] + [fi.bpp]
    if hd.tiles is not None:
        plan = tiling.Tiling(*hd.tiles)
        ph, pw = padded(hd.height), padded(hd.width)
        fi.tiles = {"side": plan.extent, "overlap": plan.overlap, "rows": len(plan.spans(ph)), "columns": len(plan.spans(pw))}
    return fi


def map_image(fi: FileInfo) -> Image.Image:
    """The iteration map of an adaptive file (its info()) drawn at the image's size: black = 1
    iteration, white = the most any tile received."""
    if fi.tile_iterations is None:
        raise CodecError("not an adaptive file; it has no iteration map")
    counts = np.asarray(fi.tile_iterations, dtype=np.float64)
    span = max(1.0, counts.max() - 1)
    levels = np.round((counts - 1) / span * 255).astype(np.uint8)
    big = np.repeat(np.repeat(levels, fi.tile, 0), fi.tile, 1)[:fi.height, :fi.width]
    return Image.fromarray(big, "L")

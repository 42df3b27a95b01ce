"""A codec's images as .lstm files and back, around the tensor work: the bytes of an image's coded iterations
(header, alpha, ICC, iteration map: format/container.py lays them out), and a file read, checked against the
codec's weights and entropy-decoded into bit planes (Decoded), every chunk before any pixel."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from lstmcodec.format import tiling
from lstmcodec.coding.tensors import check_iterations
from lstmcodec.errors import CodecError
from lstmcodec.format import container
from lstmcodec.format.itermap import decode_map, map_masks
from lstmcodec.geometry import BLOCK, blocks, padded
from lstmcodec.io.files import read_file
from lstmcodec.io.imageio import SourceImage, pack_alpha, pack_icc, to_pil, unpack_alpha, unpack_icc
from lstmcodec.nets.config import decoder_cost


@dataclass
class EncodeResult:
    data: bytes
    notices: list[str]


@dataclass
class Decoded:
    """A file read and entropy-decoded, ready for the decoder network."""
    header: container.Header
    planes: list[np.ndarray]                  # the bit planes, 0/1 (of the tiled grid for a tiled file)
    masks: list[np.ndarray | None]            # blocks each iteration holds (adaptive files), else None
    plan: tiling.Tiling | None
    alpha: np.ndarray | None
    icc: bytes | None
    tail: bool = True                         # whether the late iterations are the weights' linear tail

    def image(self, rgb: np.ndarray) -> Image.Image:
        return to_pil(rgb, self.header.mode, self.alpha, self.icc)


def frame(codec, src: SourceImage, payloads: list[bytes], iteration_map: bytes | None = None,
          plan: tiling.Tiling | None = None) -> bytes:
    """The .lstm bytes of an image's coded iterations: header, alpha and ICC chunks, the map, the iterations."""
    h, w = src.rgb.shape[:2]
    header = container.Header(w, h, src.mode, len(payloads), codec.name, codec.fingerprint,
                              None if plan is None else (plan.extent, plan.overlap))
    alpha = pack_alpha(src.alpha) if src.alpha is not None else None
    icc = pack_icc(src.icc) if src.icc else None
    return container.write(header, payloads, alpha, icc, iteration_map)


def read(codec, data: bytes | str | os.PathLike, iterations: int | None = None) -> Decoded:
    """Parse a file made with `codec` and entropy-decode its first `iterations` iterations (all by default).
    Every chunk is decoded before any pixel: a corrupt chunk fails before there is output."""
    raw = read_file(data) if isinstance(data, (str, os.PathLike)) else bytes(data)
    f = container.read(raw)
    hd = f.header
    tail = check_file(codec, hd)
    n = len(f.iterations) if iterations is None else check_iterations(iterations)
    if n < 1:
        raise CodecError("iterations must be at least 1")
    if n > len(f.iterations):
        raise CodecError(f"the file holds {len(f.iterations)} iterations, {n} requested")
    grid = blocks(hd.height, hd.width)
    plan = None if hd.tiles is None else tiling.Tiling(*hd.tiles)
    shape = (codec.config.bits, *(grid if plan is None else plan.grid(padded(hd.height), padded(hd.width))))
    container.check_work(shape[1] * shape[2] * BLOCK * BLOCK, n, len(raw), decoder_cost(codec.config),
                         0 if plan is None else len(plan.tiles(padded(hd.height), padded(hd.width))))
    masks: list[np.ndarray | None] = [None] * n
    if f.iteration_map is not None:
        counts, tile = decode_map(f.iteration_map, grid)
        masks = map_masks(counts, tile, grid, n)
    coder = codec.plane_coder()
    planes = []
    for payload, mask in zip(f.iterations[:n], masks):
        coded = shape[0] * (shape[1] * shape[2] if mask is None else int(mask.sum()))
        if len(payload) > 1 + (coded + 7) // 8:
            raise CodecError("iteration chunk is larger than its image allows")
        planes.append(coder.decode(payload, shape, mask))
    alpha = unpack_alpha(f.alpha, hd.width, hd.height) if f.alpha is not None else None
    icc = unpack_icc(f.icc) if f.icc is not None else None
    return Decoded(hd, planes, masks, plan, alpha, icc, tail)


def check_file(codec, header: container.Header) -> bool:
    """Refuses a file whose header records other weights than the codec's; returns whether it was written with their
    linear tail (False: the file records the weights without it, and decodes with the networks alone)."""
    if header.fingerprint == codec.fingerprint:
        return True
    if header.fingerprint != codec.network_fingerprint:
        raise CodecError(f"model mismatch: the file was made with '{header.model}' ({header.fingerprint.hex()}), "
                         f"not with these weights '{codec.name}' ({codec.fingerprint.hex()})")
    return False

"""The iteration map of a spatially adaptive file: how many iterations each tile receives, ANS-coded.

No torch here: `lstmcodec info` reads maps without loading a network.
"""
from __future__ import annotations

import constriction
import numpy as np

from lstmcodec.errors import CodecError
from lstmcodec.geometry import ceil_div

MAP_TILES = (1, 2, 4, 8)    # tile sides a map may use, in 16-pixel blocks


def encode_map(counts: np.ndarray, tile: int) -> bytes:
    """The iteration map: counts[i, j] in 1..64 is how many iterations tile (i, j) receives; tile is
    its side in 16-pixel blocks. Payload: tile (1 byte), the largest count M (1 byte), M frequencies
    (uint16) of the counts 1..M, then (unless only one count occurs) the counts in C-order coded with
    constriction's ANS coder and a categorical model of those frequencies (uint32 words)."""
    values = counts.astype(np.int32).ravel() - 1
    top = int(values.max()) + 1
    freq = np.bincount(values, minlength=top)
    freq = np.where(freq > 0, np.maximum(1, np.round(freq * min(1.0, 65535 / freq.max()))), 0).astype("<u2")
    if np.count_nonzero(freq) == 1:  # one value everywhere: the frequencies say it all
        return bytes([tile, top]) + freq.tobytes()
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(values, _categorical(freq))
    return bytes([tile, top]) + freq.tobytes() + coder.get_compressed().astype("<u4").tobytes()


def decode_map(payload: bytes, blocks: tuple[int, int]) -> tuple[np.ndarray, int]:
    """Inverse of encode_map for an image of blocks = (rows, columns) of 16-pixel blocks.
    Returns (counts, tile). Raises CodecError on a payload that cannot be such a map."""
    if len(payload) < 2 or payload[0] not in MAP_TILES or not 1 <= payload[1] <= 64:
        raise CodecError("corrupt iteration map chunk")
    tile, top = payload[0], payload[1]
    shape = (ceil_div(blocks[0], tile), ceil_div(blocks[1], tile))
    body = payload[2 + 2 * top:]
    if len(payload) < 2 + 2 * top or len(body) % 4:
        raise CodecError("corrupt iteration map chunk")
    freq = np.frombuffer(payload[2:2 + 2 * top], "<u2")
    if freq.sum() == 0:
        raise CodecError("corrupt iteration map chunk")
    if np.count_nonzero(freq) == 1:
        if body:
            raise CodecError("corrupt iteration map chunk")
        return np.full(shape, int(np.flatnonzero(freq)[0]) + 1, dtype=np.int64), tile
    try:
        decoder = constriction.stream.stack.AnsCoder(np.frombuffer(body, "<u4").astype(np.uint32))
        values = np.asarray(decoder.decode(_categorical(freq), shape[0] * shape[1]), dtype=np.int64)
    except Exception as e:
        raise CodecError(f"iteration map chunk does not decode ({e})") from None
    return (values + 1).reshape(shape), tile


def _categorical(freq: np.ndarray):
    return constriction.stream.model.Categorical(freq.astype(np.float64) / float(freq.sum()), perfect=False)


def block_counts(counts: np.ndarray, tile: int, blocks: tuple[int, int]) -> np.ndarray:
    """The iterations each 16-pixel block receives (rows x columns) under a map of tiles of `tile` blocks."""
    return np.repeat(np.repeat(counts, tile, axis=0), tile, axis=1)[:blocks[0], :blocks[1]]


def map_masks(counts: np.ndarray, tile: int, blocks: tuple[int, int], iterations: int) -> list[np.ndarray]:
    """The rows x columns boolean mask of the blocks that iteration t holds, for t = 1..iterations."""
    per_block = block_counts(counts, tile, blocks)
    return [per_block >= t for t in range(1, iterations + 1)]

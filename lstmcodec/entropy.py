"""Entropy coding of one iteration's bit plane with constriction (ANS).

The probability of each bit depends only on integers: its channel, and the bit at the same
position in the previous iteration (the context). The encoder counts the bits of each context
in this plane, stores the probabilities as 8-bit integers (p(1) = k/256, k in 1..255) at the
head of the chunk, and codes the whole plane in one vectorised call. The decoder rebuilds the
same probabilities from the same integers, so every machine decodes the same bits.

A chunk starts with a method byte:
    0  raw: the bits packed MSB-first (numpy.packbits order), used when it is not larger;
    1  context: table (channels x contexts bytes), then the ANS words (uint32, little-endian).
"""
from __future__ import annotations

import constriction
import numpy as np

from .errors import CodecError

RAW, CONTEXT = 0, 1
_BERNOULLI = constriction.stream.model.Bernoulli(perfect=False)


def _contexts(shape: tuple[int, int, int], prev: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Context index of every bit: channel * n + (previous bit), n = 1 without a previous plane."""
    c = np.arange(shape[0], dtype=np.int64).reshape(-1, 1, 1)
    if prev is None:
        return np.broadcast_to(c, shape).ravel(), 1
    return (c * 2 + prev.astype(np.int64)).ravel(), 2


def encode_plane(bits: np.ndarray, prev: np.ndarray | None = None) -> bytes:
    """bits: C x H x W array of 0/1 (uint8); prev: the previous iteration's plane or None."""
    bits = np.ascontiguousarray(bits, dtype=np.uint8)
    raw = bytes([RAW]) + np.packbits(bits.ravel()).tobytes()
    ctx, per_channel = _contexts(bits.shape, prev)
    n_ctx = bits.shape[0] * per_channel
    flat = bits.ravel()
    ones = np.bincount(ctx, weights=flat, minlength=n_ctx)
    total = np.bincount(ctx, minlength=n_ctx)
    table = np.clip(np.round(256 * (ones + 0.5) / (total + 1.0)), 1, 255).astype(np.uint8)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(flat.astype(np.int32), _BERNOULLI, table[ctx].astype(np.float64) / 256)
    coded = bytes([CONTEXT]) + table.tobytes() + coder.get_compressed().astype("<u4").tobytes()
    return coded if len(coded) < len(raw) else raw


def decode_plane(payload: bytes, shape: tuple[int, int, int], prev: np.ndarray | None = None) -> np.ndarray:
    """Inverse of encode_plane. Raises CodecError on a payload that cannot be this plane."""
    n = shape[0] * shape[1] * shape[2]
    if not payload:
        raise CodecError("empty iteration chunk")
    method, body = payload[0], payload[1:]
    if method == RAW:
        if len(body) != (n + 7) // 8:
            raise CodecError("iteration chunk has the wrong size for its image")
        return np.unpackbits(np.frombuffer(body, np.uint8), count=n).reshape(shape)
    if method != CONTEXT:
        raise CodecError(f"unknown entropy coding method {method}")
    ctx, per_channel = _contexts(shape, prev)
    n_ctx = shape[0] * per_channel
    if len(body) < n_ctx or (len(body) - n_ctx) % 4:
        raise CodecError("iteration chunk has the wrong size for its image")
    table = np.frombuffer(body[:n_ctx], np.uint8)
    if table.min(initial=1) == 0:
        raise CodecError("iteration chunk has an invalid probability table")
    words = np.frombuffer(body[n_ctx:], "<u4").astype(np.uint32)
    try:
        decoder = constriction.stream.stack.AnsCoder(words)
        bits = decoder.decode(_BERNOULLI, table[ctx].astype(np.float64) / 256)
    except Exception as e:  # constriction reports damaged streams with its own exception types
        raise CodecError(f"iteration chunk does not decode ({e})") from None
    return np.asarray(bits, dtype=np.uint8).reshape(shape)

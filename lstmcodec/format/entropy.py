"""Entropy coding of one iteration's bit plane with constriction (ANS).

The probability of each bit depends only on integers: its channel, and the bit at the same
position in the previous iteration (the context). The encoder counts the bits of each context
in this plane, stores the probabilities as 8-bit integers (p(1) = k/256, k in 1..255) at the
head of the chunk, and codes the whole plane in one vectorised call. The decoder rebuilds the
same probabilities from the same integers, so every machine decodes the same bits.

A chunk starts with a method byte:
    0  raw: the bits packed MSB-first (numpy.packbits order), used when it is not larger;
    1  context: table (channels x contexts bytes), then the ANS words (uint32, little-endian);
    2  learned: the ANS words only. The probability of a bit comes from a table learned on training
       images and stored with the weights (`PlaneCoder`), indexed by its channel, the iteration
       (1, 2, 3-4, 5-8, 9+), the same bit in the previous iteration and the bits of the K previous
       channels at the same position (the table's shape gives K), then adapted to the image: it is
       mixed, in integer arithmetic, with the counts of the same context in the image's earlier
       iterations. Channels are decoded one after another (32 vectorised calls per iteration),
       because each depends on the ones before.
    3  mixed: the ANS words only. The same learned table's probability (without the image's counts) is
       corrected by a small network stored with the weights (`Mixer`), which also sees the bits of all earlier
       channels and all the bits of the previous iteration at the same position. It runs in
       integer arithmetic from integer weights and lookup tables, so it is as exactly reproducible as
       the table itself.
The encoder picks the smallest of the four for every chunk (method 3 only where the weights have a mixer).
"""
from __future__ import annotations

from typing import Callable

import constriction
import numpy as np

from lstmcodec.errors import CodecError
from lstmcodec.format.mixer import Mixer
from lstmcodec.format.tables import BUCKETS, K, ONE, iteration_bucket, pattern, patterns, table_k

RAW, CONTEXT, LEARNED, MIXED = 0, 1, 2, 3
PRIOR_WEIGHT = 1024     # how many of the image's own observations the learned prior is worth
_BERNOULLI = constriction.stream.model.Bernoulli(perfect=False)


def _ans(method: int, bits: np.ndarray, probabilities: np.ndarray, head: bytes = b"") -> bytes:
    """A chunk payload: the method byte, `head`, then the bits ANS-coded under their probabilities of a 1 (floats)."""
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(bits.ravel().astype(np.int32), _BERNOULLI, probabilities.ravel().astype(np.float64))
    return bytes([method]) + head + coder.get_compressed().astype("<u4").tobytes()


# -log2(k / ONE): what a bit of probability k / ONE costs an ideal coder
_COST = -np.log2(np.maximum(np.arange(ONE + 1), 0.5) / ONE)


def _info_bytes(bits: np.ndarray, p: np.ndarray) -> float:
    """The ideal size in bytes of `bits` coded with probabilities p / ONE of a 1 (integers 1..ONE-1), with the method
    byte: what _ans's payload takes, to a few bytes (see _smallest)."""
    return float(_COST[np.where(bits.astype(bool), p, ONE - p)].sum()) / 8 + 1


def _smallest(candidates: list[tuple[float, Callable[[], bytes]]], n: int) -> bytes:
    """The shortest of the candidate payloads (the first of equals), each given as (its ideal size in bytes, how to
    make it), without coding those that cannot be the shortest. An ANS payload lies within a few bytes of its ideal
    size (measured: 1.6 below to 6.8 above; its state's last word can hold a few bits, and its flush adds some), and
    constriction's 24-bit rounding of probabilities of at least 1/4096 moves it by at most log2(1 + 2^-12) bits per
    bit (n bits: n / 2^14 bytes). So a candidate whose ideal size exceeds a payload already made by more than
    8 + n / 2^14 bytes is never the shortest, and is not made."""
    slack = 8 + n / (1 << 14)
    made: dict[int, bytes] = {}
    for i in sorted(range(len(candidates)), key=lambda i: candidates[i][0]):
        if not made or candidates[i][0] - slack <= min(map(len, made.values())):
            made[i] = candidates[i][1]()
    return min((made[i] for i in sorted(made)), key=len)


def _unans(body: bytes) -> constriction.stream.stack.AnsCoder:
    """The ANS decoder of a payload's words (uint32, little-endian)."""
    if len(body) % 4:
        raise CodecError("iteration chunk has the wrong size for its image")
    return constriction.stream.stack.AnsCoder(np.frombuffer(body, "<u4").astype(np.uint32))


def _contexts(shape: tuple[int, int, int], prev: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Context index of every bit: channel * n + (previous bit), n = 1 without a previous plane."""
    c = np.arange(shape[0], dtype=np.int64).reshape(-1, 1, 1)
    if prev is None:
        return np.broadcast_to(c, shape).ravel(), 1
    return (c * 2 + prev.astype(np.int64)).ravel(), 2


def encode_plane(bits: np.ndarray, prev: np.ndarray | None = None) -> bytes:
    """Methods 0 and 1: bits is a C x H x W array of 0/1 (uint8); prev the previous iteration's plane or None."""
    bits = np.ascontiguousarray(bits, dtype=np.uint8)
    return _smallest(_simple_candidates(bits, prev), bits.size)


def _simple_candidates(bits: np.ndarray, prev: np.ndarray | None) -> list[tuple[float, Callable[[], bytes]]]:
    """Methods 0 and 1 as _smallest's candidates (method 0 first: it wins a tie)."""
    raw = bytes([RAW]) + np.packbits(bits.ravel()).tobytes()
    ctx, per_channel = _contexts(bits.shape, prev)
    n_ctx = bits.shape[0] * per_channel
    flat = bits.ravel()
    ones = np.bincount(ctx, weights=flat, minlength=n_ctx)
    total = np.bincount(ctx, minlength=n_ctx)
    table = np.clip(np.round(256 * (ones + 0.5) / (total + 1.0)), 1, 255).astype(np.uint8)
    p = table[ctx].astype(np.int64) * (ONE // 256)
    return [(len(raw), lambda: raw),
            (n_ctx + _info_bytes(flat, p), lambda: _ans(CONTEXT, flat, p / ONE, table.tobytes()))]


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
    if len(body) < n_ctx:
        raise CodecError("iteration chunk has the wrong size for its image")
    table = np.frombuffer(body[:n_ctx], np.uint8)
    if table.min(initial=1) == 0:
        raise CodecError("iteration chunk has an invalid probability table")
    try:
        bits = _unans(body[n_ctx:]).decode(_BERNOULLI, table[ctx].astype(np.float64) / 256)
    except CodecError:
        raise
    except Exception as e:  # constriction reports damaged streams with its own exception types
        raise CodecError(f"iteration chunk does not decode ({e})") from None
    return np.asarray(bits, dtype=np.uint8).reshape(shape)


# ----------------------------------------------------------------------------- learned, adaptive contexts


def _previous_bits(prev: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """The previous iteration's bits as int64 (zeros for the first iteration)."""
    return np.zeros(shape, np.int64) if prev is None else prev.astype(np.int64)


def _local_contexts(bits: np.ndarray, prev: np.ndarray | None, k: int) -> np.ndarray:
    """Every bit's context within its channel: (previous bit, pattern of the k previous channels)."""
    return (_previous_bits(prev, bits.shape) << k) | patterns(bits, k)


def _channel_context(previous: np.ndarray, bits: np.ndarray, c: int, k: int) -> np.ndarray:
    """Channel c's part of _local_contexts, from the previous iteration's bits (as _previous_bits gives them)
    and the channels before c (the decoder fills the channels one by one)."""
    return (previous[c] << k) | pattern(bits, c, k)


class PlaneCoder:
    """Codes (or decodes) the bit planes of one image in order, remembering what the contexts have seen.

    prior: the learned table of the model (tables.learn_prior), or None for models without one (methods 0 and 1 only).
    mixer: the model's Mixer (method 3), or None.
    active: with spatially adaptive bit rates, the H x W boolean mask of the positions that iteration
    holds; only their bits are coded, in C-order over (channel, active position), every method
    treating them as a C x 1 x N plane. Positions stop for good, so an active position always has its
    previous bit.
    """

    def __init__(self, prior: np.ndarray | None, channels: int = 32, mixer: Mixer | None = None):
        self.k = K if prior is None else table_k(prior)
        self.mixer = mixer if prior is not None else None
        self.prior = None if prior is None else prior.reshape(BUCKETS, channels, 2 << self.k)  # int16, not copied
        self.prev: np.ndarray | None = None    # the previous plane, C x H x W (0 at stopped positions)
        self.t = 0
        self.ones = np.zeros((channels, 2 << self.k), dtype=np.int64)
        self.total = np.zeros_like(self.ones)

    def _table(self, c: int | None, context: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
        """Integer probabilities of the bits of channel c (None: every channel, context C x N) in their contexts
        (previous bit, pattern): the prior mixed with the counts, worked out only where a bit needs it. For every
        channel, `prior` gives the prior's entries at those contexts (the encoder has them for the mixer too)."""
        if c is None:
            at = lambda table: np.take_along_axis(table, context, axis=1)  # noqa: E731
            ones, total = at(self.ones), at(self.total)
        else:
            prior = self.prior[iteration_bucket(self.t), c][context]
            ones, total = self.ones[c][context], self.total[c][context]
        p = (prior.astype(np.int64) * PRIOR_WEIGHT + ones * ONE) // (PRIOR_WEIGHT + total)
        return np.clip(p, 1, ONE - 1)

    def _mixed(self, c: int, context: np.ndarray, bits: np.ndarray, part: np.ndarray) -> np.ndarray:
        """Method 3's probabilities of channel c's N bits, from their table contexts (N, as _local_contexts gives
        them), the bits of the channels before it (bits: C x N float32, rows below c filled) and the previous
        iteration's share of the mixer's sums (part: the plane's Mixer.previous_part)."""
        bucket = iteration_bucket(self.t)
        table_p = self.prior[bucket, c][context].astype(np.int64)
        return self.mixer.channel_probabilities(bucket, c, bits, part[c], table_p)

    def _previous(self, active: np.ndarray | None) -> np.ndarray | None:
        """The previous plane at the coded positions (C x 1 x N when `active` is given), or None at t = 1."""
        if self.prev is None or active is None:
            return self.prev
        return self.prev[:, active][:, None, :]

    def _update(self, bits: np.ndarray, local: np.ndarray, active: np.ndarray | None,
                shape: tuple[int, int, int]) -> np.ndarray:
        """Count the coded bits in their contexts (`local`, from _local_contexts); returns the whole
        C x H x W plane (0 where not coded)."""
        c = np.arange(bits.shape[0], dtype=np.int64).reshape(-1, 1, 1)
        idx = (c * (2 << self.k) + local).ravel()
        n = self.ones.size
        self.ones += np.bincount(idx, weights=bits.ravel(), minlength=n).astype(np.int64).reshape(self.ones.shape)
        self.total += np.bincount(idx, minlength=n).reshape(self.total.shape)
        if active is not None:
            plane = np.zeros(shape, dtype=np.uint8)
            plane[:, active] = bits[:, 0, :]
            bits = plane
        self.prev, self.t = bits, self.t + 1
        return bits

    def encode(self, bits: np.ndarray, active: np.ndarray | None = None) -> bytes:
        """bits: C x H x W of 0/1; active: H x W booleans or None (all). Returns the chunk payload (the smallest method)."""
        shape = bits.shape
        bits = np.ascontiguousarray(bits, dtype=np.uint8)
        if active is not None:
            bits = np.ascontiguousarray(bits[:, active][:, None, :])
        prev = self._previous(active)
        local = _local_contexts(bits, prev, self.k)
        flat, contexts = bits.reshape(bits.shape[0], -1), local.reshape(bits.shape[0], -1)
        candidates = _simple_candidates(bits, prev)     # (the payload's ideal size, how to make it), ties to the first
        if self.prior is not None:
            bucket = iteration_bucket(self.t)
            table_p = np.take_along_axis(self.prior[bucket], contexts, axis=1)
            probs = self._table(None, contexts, table_p)
            candidates.append((_info_bytes(flat, probs), lambda p=probs: _ans(LEARNED, flat, p / ONE)))
        if self.mixer is not None:
            previous = _previous_bits(prev, bits.shape).reshape(bits.shape[0], -1).astype(np.float32)
            probs = self.mixer.plane_probabilities(bucket, flat.astype(np.float32), previous, table_p)
            candidates.append((_info_bytes(flat, probs), lambda p=probs: _ans(MIXED, flat, p / ONE)))
        self._update(bits, local, active, shape)
        return _smallest(candidates, flat.size)

    def decode(self, payload: bytes, shape: tuple[int, int, int], active: np.ndarray | None = None) -> np.ndarray:
        """Inverse of encode, for the next plane of the image: the C x H x W plane (0 where not coded).
        Raises CodecError on a bad payload."""
        prev = self._previous(active)
        coded = shape if active is None else (shape[0], 1, int(active.sum()))
        if not payload or payload[0] not in (LEARNED, MIXED):
            bits = decode_plane(payload, coded, prev)
            return self._update(bits, _local_contexts(bits, prev, self.k), active, shape)
        if self.prior is None:
            raise CodecError("this chunk needs the learned context tables, which this model does not have")
        if payload[0] == MIXED and self.mixer is None:
            raise CodecError("this chunk needs the learned mixer, which this model does not have")
        if shape[0] != self.prior.shape[1]:
            raise CodecError("the model's context tables do not fit this file")
        previous = _previous_bits(prev, coded)
        bits = np.zeros(coded, dtype=np.uint8)
        flat, flat_previous = bits.reshape(coded[0], -1), previous.reshape(coded[0], -1)
        try:
            decoder = _unans(payload[1:])
            if payload[0] == MIXED:
                part = self.mixer.previous_part(iteration_bucket(self.t), flat_previous.astype(np.float32))
                flat_f = np.zeros(flat.shape, dtype=np.float32)
            for c in range(coded[0]):
                context = _channel_context(flat_previous, flat, c, self.k)
                if payload[0] == MIXED:
                    probs = self._mixed(c, context, flat_f, part)
                else:
                    probs = self._table(c, context)
                flat[c] = np.asarray(decoder.decode(_BERNOULLI, probs.astype(np.float64) / ONE), dtype=np.uint8)
                if payload[0] == MIXED:
                    flat_f[c] = flat[c]
        except CodecError:
            raise
        except Exception as e:  # constriction reports damaged streams with its own exception types
            raise CodecError(f"iteration chunk does not decode ({e})") from None
        return self._update(bits, _local_contexts(bits, prev, self.k), active, shape)

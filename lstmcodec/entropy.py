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
       corrected by a small network stored with the weights (`Mixer`), which also sees the bits of all 31
       previous channels and the 32 bits of the previous iteration at the same position. It runs in
       integer arithmetic from integer weights and lookup tables, so it is as exactly reproducible as
       the table itself.
The encoder picks the smallest of the four for every chunk (method 3 only where the weights have a mixer).
"""
from __future__ import annotations

from dataclasses import dataclass

import constriction
import numpy as np

from .errors import CodecError

RAW, CONTEXT, LEARNED, MIXED = 0, 1, 2, 3
K = 10                  # previous channels in a learned context, by default (a table's shape gives its own K)
MAX_K = 14
PRECISION = 12          # learned probabilities are integers p / 4096, p in 1..4095
ONE = 1 << PRECISION
PRIOR_WEIGHT = 1024     # how many of the image's own observations the learned prior is worth
BUCKETS = 5             # iteration groups with their own learned table: 1, 2, 3-4, 5-8, 9+
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


# ----------------------------------------------------------------------------- learned, adaptive contexts


def iteration_bucket(t: int) -> int:
    """0-based iteration index -> 0, 1, 2 (iterations 3-4), 3 (5-8), 4 (9 and after)."""
    return 0 if t == 0 else 1 if t == 1 else 2 if t < 4 else 3 if t < 8 else 4


def _patterns(bits: np.ndarray, k: int) -> np.ndarray:
    """For every bit, the k bits of the previous channels at the same position, as an integer (zeros before channel 0)."""
    p = np.zeros(bits.shape, dtype=np.int64)
    for j in range(1, k + 1):
        p[j:] |= bits[:-j].astype(np.int64) << (j - 1)
    return p


def _pattern(bits: np.ndarray, c: int, k: int) -> np.ndarray:
    """The pattern of _patterns for channel c alone, from the channels before it (decoding goes channel by channel)."""
    pattern = np.zeros(bits.shape[1:], dtype=np.int64)
    for j in range(1, min(k, c) + 1):
        pattern |= bits[c - j].astype(np.int64) << (j - 1)
    return pattern


def table_k(prior: np.ndarray) -> int:
    """The number of previous channels K in a learned table's contexts (its last axis has 2^K entries)."""
    return int(prior.shape[-1]).bit_length() - 1


def learn_prior(planes: list[np.ndarray], k: int = K) -> np.ndarray:
    """The learned table from training images: `planes` holds one T x C x H x W array of 0/1 per image.
    Returns int16 probabilities of a 1, shape (BUCKETS, C, 2, 2**k), each in 1..ONE-1."""
    channels = planes[0].shape[1]
    ones = np.zeros((BUCKETS, channels * 2 << k))
    total = np.zeros_like(ones)
    c = np.arange(channels, dtype=np.int64).reshape(-1, 1, 1)
    for image in planes:
        prev = np.zeros_like(image[0])
        for t, bits in enumerate(image):
            ctx = (((c * 2 + prev) << k) | _patterns(bits, k)).ravel()
            tb = iteration_bucket(t)
            ones[tb] += np.bincount(ctx, weights=bits.ravel(), minlength=ones.shape[1])
            total[tb] += np.bincount(ctx, minlength=ones.shape[1])
            prev = bits
    p = np.clip(np.round(ONE * (ones + 0.5) / (total + 1.0)), 1, ONE - 1)
    return p.astype(np.int16).reshape(BUCKETS, channels, 2, 1 << k)


# A table may be stored in one byte per entry (half the bytes of int16, so a weights file holds one more
# channel of context for the same size): each byte indexes PRIOR_LEVELS probabilities at evenly spaced logits.
# Rounding a probability's logit to the nearest level (steps of 0.065) costs under 0.0002 bits per bit.
PRIOR_LEVELS = 256


def prior_levels() -> np.ndarray:
    """The probabilities (int16, 1..ONE-1, non-decreasing) that the byte values 0..255 of a one-byte table stand for.
    Computed in float64 when a table is packed; the weights file stores them, so decoding never recomputes them."""
    top = np.log(ONE - 1)
    logit = np.linspace(-top, top, PRIOR_LEVELS)
    return np.clip(np.round(ONE / (1 + np.exp(-logit))), 1, ONE - 1).astype(np.int16)


def pack_prior(prior: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The one-byte form of a learned table: for every entry, the first level with the nearest logit.
    unpack_prior(pack_prior(p, l), l) is the table the coder uses; packing that again gives the same bytes."""
    def logit(q):
        q = q.astype(np.float64)
        return np.log(q / (ONE - q))
    grid, target = logit(levels), logit(prior)
    hi = np.clip(np.searchsorted(grid, target), 1, len(grid) - 1)
    nearest = np.where(target - grid[hi - 1] <= grid[hi] - target, hi - 1, hi)
    return np.searchsorted(levels, levels[nearest], side="left").astype(np.uint8)


def unpack_prior(codes: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The int16 table of a one-byte table `codes` (uint8) and its `levels`; raises ValueError on bad levels."""
    if levels.shape != (PRIOR_LEVELS,) or levels.dtype != np.int16 or codes.dtype != np.uint8:
        raise ValueError("a one-byte table needs uint8 entries and 256 int16 levels")
    return levels[codes]


def check_prior(prior: np.ndarray, channels: int) -> None:
    """Raises ValueError unless `prior` is a valid learned table for `channels` bit channels."""
    k = table_k(prior) if prior.ndim == 4 else 0
    if (prior.shape != (BUCKETS, channels, 2, 1 << k) or not 1 <= k <= MAX_K
            or prior.min() < 1 or prior.max() > ONE - 1):
        raise ValueError(f"learned context table has shape {tuple(prior.shape)} or values outside 1..{ONE - 1}")


def _previous_bits(prev: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """The previous iteration's bits as int64 (zeros for the first iteration)."""
    return np.zeros(shape, np.int64) if prev is None else prev.astype(np.int64)


def _local_contexts(bits: np.ndarray, prev: np.ndarray | None, k: int) -> np.ndarray:
    """Every bit's context within its channel: (previous bit, pattern of the k previous channels)."""
    return (_previous_bits(prev, bits.shape) << k) | _patterns(bits, k)


def _channel_context(previous: np.ndarray, bits: np.ndarray, c: int, k: int) -> np.ndarray:
    """Channel c's part of _local_contexts, from the previous iteration's bits (as _previous_bits gives them)
    and the channels before c (the decoder fills the channels one by one)."""
    return (previous[c] << k) | _pattern(bits, c, k)


# ----------------------------------------------------------------------------- the mixer (method 3)

LOGIT_ONE = 256          # the mixer's logits are integers in units of 1/256
LOGIT_MAX = 2304         # and are clamped to +-9.0 before the squash table
MIXER_INPUTS = 64        # the bits of the 31 previous channels, the 32 bits of the previous iteration, the table's logit


@dataclass(frozen=True)
class Mixer:
    """A one-hidden-layer network per (iteration bucket, channel) that corrects the learned table's logit.

    All integers (int16 as stored), for groups g = bucket * C + channel and H hidden units:
      w1 (G, 64, H): rows 0-30 weigh the bits of channels c-1 .. c-31 (absent channels read 0), rows 31-62 the
                     previous iteration's bits of channels 0..31 (all 0 in the first iteration), row 63 the
                     table's logit; b1 (G, H);  w2 (G, H + 2): the hidden units, the table's logit, the bias.
      stretch (ONE,): the logit of probability p / ONE (index 0 unused); squash (2 LOGIT_MAX + 1,): the
                     probability p / ONE of logit l at index l + LOGIT_MAX.
    With x the 63 bits and s the table's logit, the logit of a 1 is
      u = 256 (x . w1[:63] + b1) + s w1[63]   (units 1/65536),   h = max(u, 0),
      l = floor(h . w2[:H] / 2^16) + floor(s w2[H] / 2^8) + w2[H + 1],
    clamped to +-LOGIT_MAX, and its probability is squash[l + LOGIT_MAX]. With |weights| < 2^15 and
    H <= 64 every sum stays below 2^53, so float64 matrix products compute them exactly.
    """
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    stretch: np.ndarray
    squash: np.ndarray

    @staticmethod
    def from_arrays(arrays: dict, channels: int) -> "Mixer":
        """Check the stored arrays (int16) and build the mixer; raises ValueError if they cannot be one."""
        try:
            w1, b1, w2, stretch, squash = (np.asarray(arrays[k]) for k in ("w1", "b1", "w2", "stretch", "squash"))
        except KeyError as e:
            raise ValueError(f"mixer lacks the array {e}") from None
        groups, hidden = BUCKETS * channels, w1.shape[-1] if w1.ndim == 3 else 0
        ok = (channels == 32 and all(a.dtype == np.int16 for a in (w1, b1, w2, stretch, squash))
              and w1.shape == (groups, MIXER_INPUTS, hidden) and 1 <= hidden <= 64
              and b1.shape == (groups, hidden) and w2.shape == (groups, hidden + 2)
              and stretch.shape == (ONE,) and squash.shape == (2 * LOGIT_MAX + 1,)
              and np.abs(stretch).max() <= LOGIT_MAX and squash.min() >= 1 and squash.max() <= ONE - 1)
        if not ok:
            raise ValueError("mixer arrays have the wrong shapes, types or values")
        f = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731 (exact for int16)
        return Mixer(f(w1), f(b1), f(w2), stretch.astype(np.int64), squash.astype(np.int64))

    def arrays(self) -> dict:
        return {"w1": self.w1.astype(np.int16), "b1": self.b1.astype(np.int16), "w2": self.w2.astype(np.int16),
                "stretch": self.stretch.astype(np.int16), "squash": self.squash.astype(np.int16)}

    def probabilities(self, g: int, earlier: np.ndarray, previous: np.ndarray, table_p: np.ndarray) -> np.ndarray:
        """Integer probabilities (1..ONE-1) of a 1 for the N bits of one channel.
        g: its group; earlier: the bits of channels c-1, c-2, ... (k x N, k <= 31, nearest first);
        previous: the previous iteration's bits of all channels (C x N); table_p: the table's probabilities (N)."""
        w1 = self.w1[g]
        s = self.stretch[table_p]
        x = w1[:len(earlier)].T @ earlier + w1[31:63].T @ previous + self.b1[g][:, None]
        u = (x * LOGIT_ONE).astype(np.int64) + w1[63].astype(np.int64)[:, None] * s
        h = np.maximum(u, 0).astype(np.float64)
        w2 = self.w2[g]
        hidden = len(w2) - 2
        logit = ((w2[:hidden] @ h).astype(np.int64) >> 16) + ((int(w2[hidden]) * s) >> 8) + int(w2[hidden + 1])
        return self.squash[np.clip(logit, -LOGIT_MAX, LOGIT_MAX) + LOGIT_MAX]


def logit_tables() -> tuple[np.ndarray, np.ndarray]:
    """The stretch and squash lookup tables a new mixer stores (computed once, in float64, when it is learned)."""
    p = np.arange(ONE, dtype=np.float64)
    p[0] = 0.5
    stretch = np.clip(np.round(LOGIT_ONE * np.log(p / (ONE - p))), -LOGIT_MAX, LOGIT_MAX)
    stretch[0] = -LOGIT_MAX
    logit = np.arange(-LOGIT_MAX, LOGIT_MAX + 1, dtype=np.float64) / LOGIT_ONE
    squash = np.clip(np.round(ONE / (1 + np.exp(-logit))), 1, ONE - 1)
    return stretch.astype(np.int16), squash.astype(np.int16)


class PlaneCoder:
    """Codes (or decodes) the bit planes of one image in order, remembering what the contexts have seen.

    prior: the learned table of the model (learn_prior), or None for models without one (methods 0 and 1 only).
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

    def _table(self, c: int | slice) -> np.ndarray:
        """Integer probabilities of channel(s) c for every (previous bit, pattern): prior mixed with counts."""
        prior = self.prior[iteration_bucket(self.t), c].astype(np.int64)
        p = (prior * PRIOR_WEIGHT + self.ones[c] * ONE) // (PRIOR_WEIGHT + self.total[c])
        return np.clip(p, 1, ONE - 1)

    def _mixed(self, c: int, context: np.ndarray, bits: np.ndarray, previous_f: np.ndarray) -> np.ndarray:
        """Method 3's probabilities of channel c's N bits, from their table contexts (N, as _local_contexts gives
        them), the bits of the channels before it (bits: C x N, rows below c filled) and the previous
        iteration's (previous_f: C x N float64)."""
        bucket = iteration_bucket(self.t)
        table_p = self.prior[bucket, c][context].astype(np.int64)
        earlier = bits[max(0, c - 31):c][::-1].astype(np.float64)
        return self.mixer.probabilities(bucket * bits.shape[0] + c, earlier, previous_f, table_p)

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
        best = encode_plane(bits, prev)
        local = _local_contexts(bits, prev, self.k)
        if self.prior is not None:
            probs = np.take_along_axis(self._table(slice(None)), local.reshape(bits.shape[0], -1), axis=1)
            coder = constriction.stream.stack.AnsCoder()
            coder.encode_reverse(bits.ravel().astype(np.int32), _BERNOULLI, probs.ravel().astype(np.float64) / ONE)
            learned = bytes([LEARNED]) + coder.get_compressed().astype("<u4").tobytes()
            best = learned if len(learned) < len(best) else best
        if self.mixer is not None:
            flat, contexts = bits.reshape(bits.shape[0], -1), local.reshape(bits.shape[0], -1)
            previous_f = _previous_bits(prev, bits.shape).reshape(bits.shape[0], -1).astype(np.float64)
            probs = np.stack([self._mixed(c, contexts[c], flat, previous_f) for c in range(bits.shape[0])])
            coder = constriction.stream.stack.AnsCoder()
            coder.encode_reverse(flat.ravel().astype(np.int32), _BERNOULLI, probs.ravel().astype(np.float64) / ONE)
            mixed = bytes([MIXED]) + coder.get_compressed().astype("<u4").tobytes()
            best = mixed if len(mixed) < len(best) else best
        self._update(bits, local, active, shape)
        return best

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
        body = payload[1:]
        if len(body) % 4:
            raise CodecError("iteration chunk has the wrong size for its image")
        previous = _previous_bits(prev, coded)
        bits = np.zeros(coded, dtype=np.uint8)
        try:
            decoder = constriction.stream.stack.AnsCoder(np.frombuffer(body, "<u4").astype(np.uint32))
            if payload[0] == MIXED:
                flat, flat_previous = bits.reshape(coded[0], -1), previous.reshape(coded[0], -1)
                previous_f = flat_previous.astype(np.float64)
                for c in range(coded[0]):
                    probs = self._mixed(c, _channel_context(flat_previous, flat, c, self.k), flat, previous_f)
                    flat[c] = np.asarray(decoder.decode(_BERNOULLI, probs.astype(np.float64) / ONE), dtype=np.uint8)
            else:
                for c in range(coded[0]):
                    probs = self._table(c)[_channel_context(previous, bits, c, self.k)]
                    bits[c] = np.asarray(decoder.decode(_BERNOULLI, probs.ravel().astype(np.float64) / ONE),
                                         dtype=np.uint8).reshape(coded[1:])
        except CodecError:
            raise
        except Exception as e:  # constriction reports damaged streams with its own exception types
            raise CodecError(f"iteration chunk does not decode ({e})") from None
        return self._update(bits, _local_contexts(bits, prev, self.k), active, shape)


# ----------------------------------------------------------------------------- the iteration map (adaptive bit rates)

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
    shape = (-(-blocks[0] // tile), -(-blocks[1] // tile))
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


def map_masks(counts: np.ndarray, tile: int, blocks: tuple[int, int], iterations: int) -> list[np.ndarray]:
    """The rows x columns boolean mask of the blocks that iteration t holds, for t = 1..iterations."""
    per_block = np.repeat(np.repeat(counts, tile, axis=0), tile, axis=1)[:blocks[0], :blocks[1]]
    return [per_block >= t for t in range(1, iterations + 1)]

"""The learned context tables of entropy coding methods 2 and 3 (integer probabilities; no torch here).

A table gives the probability (an integer p / ONE) that a bit is 1, indexed by the iteration group of its
iteration (1, 2, 3-4, 5-8, 9+), its channel, the same bit in the previous iteration and the bits of the K
previous channels at the same position (the table's shape gives K). Tables are counted on training images
(`learn_prior`) and stored with the weights, as int16 or as one byte per entry indexing 256 levels.
"""
from __future__ import annotations

import numpy as np

K = 10                  # previous channels in a learned context, by default (a table's shape gives its own K)
MAX_K = 14
PRECISION = 12          # learned probabilities are integers p / 4096, p in 1..4095
ONE = 1 << PRECISION
BUCKETS = 5             # iteration groups with their own learned table: 1, 2, 3-4, 5-8, 9+
# A table may be stored in one byte per entry (half the bytes of int16, so a weights file holds one more
# channel of context for the same size): each byte indexes PRIOR_LEVELS probabilities at evenly spaced logits.
# Rounding a probability's logit to the nearest level (steps of 0.065) costs under 0.0002 bits per bit.
PRIOR_LEVELS = 256


def iteration_bucket(t: int) -> int:
    """0-based iteration index -> 0, 1, 2 (iterations 3-4), 3 (5-8), 4 (9 and after)."""
    return 0 if t == 0 else 1 if t == 1 else 2 if t < 4 else 3 if t < 8 else 4


def patterns(bits: np.ndarray, k: int) -> np.ndarray:
    """For every bit, the k bits of the previous channels at the same position, as an integer (zeros before channel 0)."""
    p = np.zeros(bits.shape, dtype=np.int64)
    for j in range(1, k + 1):
        p[j:] |= bits[:-j].astype(np.int64) << (j - 1)
    return p


def pattern(bits: np.ndarray, c: int, k: int) -> np.ndarray:
    """The pattern of `patterns` for channel c alone, from the channels before it (decoding goes channel by channel)."""
    out = np.zeros(bits.shape[1:], dtype=np.int64)
    for j in range(1, min(k, c) + 1):
        out |= bits[c - j].astype(np.int64) << (j - 1)
    return out


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
            ctx = (((c * 2 + prev) << k) | patterns(bits, k)).ravel()
            tb = iteration_bucket(t)
            ones[tb] += np.bincount(ctx, weights=bits.ravel(), minlength=ones.shape[1])
            total[tb] += np.bincount(ctx, minlength=ones.shape[1])
            prev = bits
    p = np.clip(np.round(ONE * (ones + 0.5) / (total + 1.0)), 1, ONE - 1)
    return p.astype(np.int16).reshape(BUCKETS, channels, 2, 1 << k)


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


def stored(prior: np.ndarray, table_bytes: int) -> np.ndarray:
    """The table as a weights file gives it back to the coder: rounded to the one-byte levels if table_bytes is 1."""
    if table_bytes == 2:
        return prior
    levels = prior_levels()
    return unpack_prior(pack_prior(prior, levels), levels)


def check_prior(prior: np.ndarray, channels: int) -> None:
    """Raises ValueError unless `prior` is a valid learned table for `channels` bit channels."""
    k = table_k(prior) if prior.ndim == 4 else 0
    if (prior.dtype != np.int16 or prior.shape != (BUCKETS, channels, 2, 1 << k) or not 1 <= k <= MAX_K
            or prior.min() < 1 or prior.max() > ONE - 1):
        raise ValueError(f"learned context table has shape {tuple(prior.shape)} or values outside 1..{ONE - 1}")

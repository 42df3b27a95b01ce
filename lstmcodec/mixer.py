"""The mixer of entropy coding method 3: a small integer network that corrects the learned table's probability.

One hidden layer per (iteration bucket, channel) group, in integer arithmetic from integer weights and lookup
tables, so that it is as exactly reproducible as the table itself (docs/format.md states the arithmetic).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tables import BUCKETS, ONE

LOGIT_ONE = 256          # the mixer's logits are integers in units of 1/256
LOGIT_MAX = 2304         # and are clamped to +-9.0 before the squash table
MAX_HIDDEN = 64


def mixer_inputs(channels: int) -> int:
    """Inputs of a mixer for `channels` bit channels: the channels before a bit's own (channels - 1), the previous
    iteration's bits of all channels (channels), and the table's logit (1)."""
    return 2 * channels


@dataclass(frozen=True)
class Mixer:
    """A one-hidden-layer network per (iteration bucket, channel) that corrects the learned table's logit.

    All integers (int16 as stored), for C channels, groups g = bucket * C + channel and H hidden units:
      w1 (G, 2C, H): rows 0 .. C-2 weigh the bits of channels c-1 .. c-C+1 (absent channels read 0), rows C-1 ..
                     2C-2 the previous iteration's bits of channels 0 .. C-1 (all 0 in the first iteration), row
                     2C-1 the table's logit; b1 (G, H);  w2 (G, H + 2): the hidden units, the table's logit, the bias.
      stretch (ONE,): the logit of probability p / ONE (index 0 unused); squash (2 LOGIT_MAX + 1,): the
                     probability p / ONE of logit l at index l + LOGIT_MAX.
    With x the 2C - 1 bits and s the table's logit, the logit of a 1 is
      u = 256 (x . w1[:2C-1] + b1) + s w1[2C-1]   (units 1/65536),   h = max(u, 0),
      l = floor(h . w2[:H] / 2^16) + floor(s w2[H] / 2^8) + w2[H + 1],
    clamped to +-LOGIT_MAX, and its probability is squash[l + LOGIT_MAX]. With |weights| < 2^15, C <= 32 and
    H <= 64 every sum stays below 2^53, so float64 matrix products compute them exactly.
    """
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    stretch: np.ndarray
    squash: np.ndarray

    @property
    def channels(self) -> int:
        return self.w1.shape[1] // 2

    @staticmethod
    def from_arrays(arrays: dict, channels: int) -> "Mixer":
        """Check the stored arrays (int16) and build the mixer; raises ValueError if they cannot be one."""
        try:
            w1, b1, w2, stretch, squash = (np.asarray(arrays[k]) for k in ("w1", "b1", "w2", "stretch", "squash"))
        except KeyError as e:
            raise ValueError(f"mixer lacks the array {e}") from None
        groups, hidden = BUCKETS * channels, w1.shape[-1] if w1.ndim == 3 else 0
        ok = (1 <= channels <= 32 and all(a.dtype == np.int16 for a in (w1, b1, w2, stretch, squash))
              and w1.shape == (groups, mixer_inputs(channels), hidden) and 1 <= hidden <= MAX_HIDDEN
              and b1.shape == (groups, hidden) and w2.shape == (groups, hidden + 2)
              and stretch.shape == (ONE,) and squash.shape == (2 * LOGIT_MAX + 1,)
              and np.abs(stretch.astype(np.int64)).max() <= LOGIT_MAX and squash.min() >= 1 and squash.max() <= ONE - 1)
        if not ok:
            raise ValueError("mixer arrays have the wrong shapes, types or values")
        f = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731 (exact for int16)
        return Mixer(f(w1), f(b1), f(w2), stretch.astype(np.int64), squash.astype(np.int64))

    def arrays(self) -> dict:
        return {"w1": self.w1.astype(np.int16), "b1": self.b1.astype(np.int16), "w2": self.w2.astype(np.int16),
                "stretch": self.stretch.astype(np.int16), "squash": self.squash.astype(np.int16)}

    def probabilities(self, g: int, earlier: np.ndarray, previous: np.ndarray, table_p: np.ndarray) -> np.ndarray:
        """Integer probabilities (1..ONE-1) of a 1 for the N bits of one channel.
        g: its group; earlier: the bits of channels c-1, c-2, ... (k x N, k < C, nearest first);
        previous: the previous iteration's bits of all channels (C x N); table_p: the table's probabilities (N)."""
        w1, c = self.w1[g], self.channels
        s = self.stretch[table_p]
        x = w1[:len(earlier)].T @ earlier + w1[c - 1:2 * c - 1].T @ previous + self.b1[g][:, None]
        u = (x * LOGIT_ONE).astype(np.int64) + w1[2 * c - 1].astype(np.int64)[:, None] * s
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

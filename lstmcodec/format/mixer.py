"""The mixer of entropy coding method 3: a small integer network that corrects the learned table's probability.

One hidden layer per (iteration bucket, channel) group, in integer arithmetic from integer weights and lookup
tables, so that it is as exactly reproducible as the table itself (docs/format.md states the arithmetic).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmcodec.format.tables import BUCKETS, ONE

LOGIT_ONE = 256          # the mixer's logits are integers in units of 1/256
LOGIT_MAX = 2304         # and are clamped to +-9.0 before the squash table
MAX_HIDDEN = 64
CHUNK = 8192           # positions per batched product of plane_probabilities (bounds its memory)


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
    H <= 64 every sum is an integer that floating point holds exactly, whatever order a matrix product adds in:
    x . w1[:2C-1] + b1 stays below 2^21 (float32 holds integers to 2^24), h . w2[:H] below 2^51 (float64: 2^53).
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

    def __post_init__(self):
        c, hidden = self.channels, self.w1.shape[-1]
        groups = self.w1.shape[0]
        # float32 copies for the first layer (exact: see the class docstring), laid out for one matrix product per
        # plane (the previous iteration's bits, all channels at once) and one per channel (the earlier channels)
        previous = self.w1[:, c - 1:2 * c - 1].astype(np.float32)                  # G x C(previous) x H
        object.__setattr__(self, "_w_previous", np.ascontiguousarray(
            previous.reshape(groups // c, c, c, hidden).transpose(0, 1, 3, 2).reshape(groups // c, c * hidden, c)))
        object.__setattr__(self, "_w_earlier", np.ascontiguousarray(self.w1[:, c - 2::-1].astype(np.float32)
                                                                     .transpose(0, 2, 1)))  # G x H x (C-1), far first
        object.__setattr__(self, "_b1", self.b1.astype(np.float32))
        object.__setattr__(self, "stretch_f", self.stretch.astype(np.float64))

    def arrays(self) -> dict:
        return {"w1": self.w1.astype(np.int16), "b1": self.b1.astype(np.int16), "w2": self.w2.astype(np.int16),
                "stretch": self.stretch.astype(np.int16), "squash": self.squash.astype(np.int16)}

    def previous_part(self, bucket: int, previous: np.ndarray) -> np.ndarray:
        """What the previous iteration's bits (C x N float32 of 0/1) and the bias add to every channel's hidden
        units in one iteration bucket: C x H x N float32 (exact integers), for `channel_probabilities`."""
        c, n = self.channels, previous.shape[1]
        part = (self._w_previous[bucket] @ previous).reshape(c, -1, n)
        part += self._b1[bucket * c:(bucket + 1) * c, :, None]
        return part

    def channel_probabilities(self, bucket: int, c: int, bits: np.ndarray, part: np.ndarray,
                              table_p: np.ndarray) -> np.ndarray:
        """The probabilities (1..ONE-1) of a 1 for channel c's N bits, from the plane's bits (C x N float32, the
        rows before c filled), its `previous_part` (H x N) and the table's probabilities (N): the integers of the
        class docstring's formula."""
        g, k = bucket * self.channels + c, min(c, self.channels - 1)
        x = part if k == 0 else self._w_earlier[g][:, self.channels - 1 - k:] @ bits[c - k:c] + part
        return self._output(g, x, table_p)

    def plane_probabilities(self, bucket: int, bits: np.ndarray, previous: np.ndarray, table_p: np.ndarray,
                            chunk: int = CHUNK) -> np.ndarray:
        """channel_probabilities of every channel of a plane at once, for an encoder, which has all its bits: bits and
        previous C x N float32 of 0/1 (the plane and the previous iteration's), table_p C x N; returns C x N. The same
        integers (the sums are exact in any order), in a few batched products over `chunk` positions at a time."""
        c, n = bits.shape
        w_earlier = self._w_earlier[bucket * c:(bucket + 1) * c]                     # C x H x (C-1), far first
        g = np.arange(bucket * c, (bucket + 1) * c)
        out = np.empty((c, n), dtype=np.int64)
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            # the earlier channels of channel i, far first: channels i-C+1 .. i-1, zeros before channel 0
            padded = np.concatenate([np.zeros((c - 1, b - a), np.float32), bits[:c - 1, a:b]])
            earlier = np.stack([padded[i:i + c - 1] for i in range(c)])               # C x (C-1) x n
            x = np.matmul(w_earlier, earlier)
            x += self.previous_part(bucket, previous[:, a:b])
            out[:, a:b] = self._output(g, x, table_p[:, a:b])
        return out

    def _output(self, g: int | np.ndarray, x: np.ndarray, table_p: np.ndarray) -> np.ndarray:
        """The integer formula from the first layer's sum x (H x N, without the table's logit) on; for one group g, or
        for an array of groups with x (G x H x N) and table_p (G x N)."""
        # in float64, every value an integer below 2^53, so each step is exact; floor(v / 2^n) is v >> n
        s = self.stretch_f[table_p]
        u = x.astype(np.float64)
        u *= LOGIT_ONE
        u += self.w1[g, 2 * self.channels - 1][..., None] * s[..., None, :]
        h = np.maximum(u, 0, out=u)
        w2 = self.w2[g]
        hidden = w2.shape[-1] - 2
        logit = np.floor(np.matmul(w2[..., None, :hidden], h)[..., 0, :] * 2.0 ** -16)
        logit += np.floor(s * (w2[..., hidden, None] * 2.0 ** -8))
        logit += w2[..., hidden + 1, None] + LOGIT_MAX
        return self.squash[np.clip(logit, 0, 2 * LOGIT_MAX).astype(np.intp)]


def logit_tables() -> tuple[np.ndarray, np.ndarray]:
    """The stretch and squash lookup tables a new mixer stores (computed once, in float64, when it is learned)."""
    p = np.arange(ONE, dtype=np.float64)
    p[0] = 0.5
    stretch = np.clip(np.round(LOGIT_ONE * np.log(p / (ONE - p))), -LOGIT_MAX, LOGIT_MAX)
    stretch[0] = -LOGIT_MAX
    logit = np.arange(-LOGIT_MAX, LOGIT_MAX + 1, dtype=np.float64) / LOGIT_ONE
    squash = np.clip(np.round(ONE / (1 + np.exp(-logit))), 1, ONE - 1)
    return stretch.astype(np.int16), squash.astype(np.int16)

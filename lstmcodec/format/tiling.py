"""Large images as overlapping tiles: the geometry that the encoder and the decoder share.

The networks' memory grows with the pixels they process at once (about 0.8 GB per megapixel on a
CPU), so an image of more than THRESHOLD pixels (after padding to 16-pixel blocks) is coded as tiles
of at most EXTENT x EXTENT pixels that overlap their neighbours by OVERLAP pixels. Each tile runs
the whole recurrence on its own, so the encoder's reconstruction and the decoder's agree exactly and
memory depends on the tile, not on the image. The decoder blends neighbouring tiles with linear ramps
across their overlap, which hides the seams (tile edges are where a tile's convolutions see zero
padding; blending two such estimates leaves the error there at the level of an untiled coding).

The bits of one iteration for all tiles form one plane of the *tiled grid*: the tiles' block grids
laid side by side in raster order (a block in an overlap appears once for each tile covering it), so
an iteration is still one chunk and every prefix of chunks still decodes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK = 16                 # pixels per side of a code block (nets.recurrent.BLOCK)
EXTENT = 1024              # default tile side in pixels
OVERLAP = 16               # default overlap in pixels: one block
MIN_EXTENT = 64           # smaller tiles would cost more in overlaps and per-tile overhead than they save
THRESHOLD = 1 << 21        # images with more padded pixels than this are tiled (1920x1080 is not)


@dataclass(frozen=True)
class Tile:
    y0: int                # pixel rectangle [y0, y1) x [x0, x1) in the padded image
    y1: int
    x0: int
    x1: int
    rows: slice            # its blocks in the tiled grid
    cols: slice
    weights: np.ndarray    # (y1 - y0) x (x1 - x0) blending weights; they sum to 1 over the tiles at every pixel


@dataclass(frozen=True)
class Tiling:
    extent: int            # tile side in pixels, a multiple of 16
    overlap: int           # pixels shared by neighbouring tiles, a multiple of 16, at most extent / 4

    def __post_init__(self):
        if self.extent % BLOCK or self.overlap % BLOCK or self.extent < MIN_EXTENT:
            raise ValueError(f"tile side and overlap must be multiples of {BLOCK} pixels, the side at least {MIN_EXTENT}")
        if not 0 <= 4 * self.overlap <= self.extent:
            raise ValueError("the tile overlap must be at most a quarter of the tile side")

    def spans(self, n: int) -> list[tuple[int, int]]:
        """The tiles' pixel intervals [start, end) along an axis of n padded pixels: each starts
        extent - overlap after the one before, the last one ends at n."""
        out, start = [], 0
        while True:
            end = min(start + self.extent, n)
            out.append((start, end))
            if end == n:
                return out
            start += self.extent - self.overlap

    def _ramp(self, length: int, lead: bool, trail: bool) -> np.ndarray:
        """Blending weights along one axis: rising across the overlap with the tile before, falling
        across the overlap with the tile after (the two ramps of a seam sum to 1)."""
        w = np.ones(length, dtype=np.float32)
        ramp = (np.arange(self.overlap, dtype=np.float32) + 0.5) / max(self.overlap, 1)
        if lead and self.overlap:
            w[:self.overlap] = ramp
        if trail and self.overlap:
            w[length - self.overlap:] = 1 - ramp
        return w

    def tiles(self, height: int, width: int) -> list[Tile]:
        """The tiles of a padded image of height x width pixels, in raster order."""
        ys, xs = self.spans(height), self.spans(width)
        out, row = [], 0
        for i, (y0, y1) in enumerate(ys):
            wy = self._ramp(y1 - y0, i > 0, i + 1 < len(ys))
            col = 0
            for j, (x0, x1) in enumerate(xs):
                wx = self._ramp(x1 - x0, j > 0, j + 1 < len(xs))
                rows = slice(row, row + (y1 - y0) // BLOCK)
                cols = slice(col, col + (x1 - x0) // BLOCK)
                out.append(Tile(y0, y1, x0, x1, rows, cols, np.outer(wy, wx)))
                col = cols.stop
            row = rows.stop
        return out

    def seam_distance(self, height: int, width: int) -> np.ndarray:
        """Every pixel's distance to the nearest inner tile edge of a height x width image (0 for the
        pixels on either side of an edge): what seam measurements select pixels by."""
        ph, pw = -(-height // BLOCK) * BLOCK, -(-width // BLOCK) * BLOCK

        def along(n: int, padded: int) -> np.ndarray:
            edges = {e for s, t in self.spans(padded) for e in (s, t) if 0 < e < padded}
            pos = np.arange(n)
            d = np.full(n, 1 << 30)
            for e in edges:
                d = np.minimum(d, np.minimum(abs(pos - e), abs(pos - (e - 1))))
            return d

        return np.minimum(along(height, ph)[:, None], along(width, pw)[None, :])

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Block rows and columns of the tiled grid of a padded height x width image."""
        return (sum(e - s for s, e in self.spans(height)) // BLOCK,
                sum(e - s for s, e in self.spans(width)) // BLOCK)


def plan(width: int, height: int, extent: int | str = "auto") -> Tiling | None:
    """The tiling for an image: extent "auto" tiles images over THRESHOLD padded pixels with
    EXTENT-pixel tiles; "off" (or 0) never tiles; a number forces tiles of that side."""
    ph, pw = -(-height // BLOCK) * BLOCK, -(-width // BLOCK) * BLOCK
    if extent == "auto":
        return Tiling(EXTENT, OVERLAP) if ph * pw > THRESHOLD else None
    if extent in ("off", 0):
        return None
    side = int(extent)
    if side >= max(ph, pw):
        return None        # one tile covers the image: code it whole
    return Tiling(side, OVERLAP)

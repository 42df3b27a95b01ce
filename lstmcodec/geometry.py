"""The block geometry that the networks, the file format and the tiling share (no torch here).

The encoder downsamples by BLOCK = 2^4 in each direction (a stride-2 convolution and three stride-2
recurrent layers), so one code vector of `bits` bits describes one BLOCK x BLOCK block of pixels and
images are edge-padded to whole blocks.
"""
from __future__ import annotations

BLOCK = 16  # pixels per side of the block that one code vector describes


def ceil_div(a: int, b: int) -> int:
    """The smallest integer >= a / b, for positive b."""
    return -(-a // b)


def blocks(height: int, width: int) -> tuple[int, int]:
    """Block rows and columns of an image of height x width pixels."""
    return ceil_div(height, BLOCK), ceil_div(width, BLOCK)


def padded(n: int) -> int:
    """A side of n pixels padded to whole blocks."""
    return ceil_div(n, BLOCK) * BLOCK


def padded_pixels(width: int, height: int) -> int:
    """Pixels the networks process: the image padded to whole blocks."""
    return padded(width) * padded(height)

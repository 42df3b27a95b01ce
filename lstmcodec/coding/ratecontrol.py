"""Rate control by prefix: encode once with the most iterations allowed, keep the prefix that meets the target.

Every prefix of a .lstm file is a valid file, so a target in bits per pixel or bytes keeps the most iterations
whose whole file fits, and a quality target keeps the fewest whose reconstruction reaches that MS-SSIM.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmcodec.format import container
from lstmcodec.coding.codec import Codec
from lstmcodec.coding.framing import EncodeResult
from lstmcodec.format.fileinfo import info
from lstmcodec.io.imageio import SourceImage


@dataclass
class RateTarget:
    """What `encode_to_target` aims for: exactly one of bpp, size (bytes) or quality (MS-SSIM)."""
    bpp: float | None = None
    size: int | None = None
    quality: float | None = None


def encode_to_target(codec: Codec, src: SourceImage, target: RateTarget, max_iterations: int = 16,
                     tiles: int | str = "auto") -> tuple[EncodeResult, int]:
    """Encode once with `max_iterations` and keep the best prefix. bpp / size: the most iterations whose whole file
    fits (CodecError if even one does not). quality: the fewest iterations whose reconstruction reaches that MS-SSIM
    (RGB) against the input (all of them if none does). Returns the result and the iterations kept."""
    from lstmcodec.errors import CodecError
    from lstmcodec.metrics import ms_ssim

    full = codec.encode_source(src, max_iterations, tiles)
    notices = list(src.notices)  # not full.notices: what they say about the iterations tried is said below for those kept
    h, w = src.rgb.shape[:2]
    if target.quality is not None:
        keep = len(info(full.data).iteration_bytes)   # a linear tail may stop before max_iterations
        for k, image in enumerate(codec.decompress_progressive(full.data), start=1):
            if ms_ssim(np.asarray(image.convert("RGB")), src.rgb) >= target.quality:
                keep = k
                break
        else:
            notices.append(f"MS-SSIM {target.quality} not reached in {max_iterations} iterations; kept them all")
    else:
        budget = target.size if target.size is not None else target.bpp * w * h / 8
        sizes = [round(b * w * h / 8) for b in info(full.data).bpp_per_iteration]   # each prefix file's bytes
        fitting = [k for k, n in enumerate(sizes, start=1) if n <= budget]
        if not fitting:
            raise CodecError(f"even 1 iteration needs {sizes[0]} bytes ({8 * sizes[0] / (w * h):.4f} bpp), over the budget")
        keep = fitting[-1]
    return EncodeResult(container.truncate(full.data, keep), notices + codec.beyond_training(keep)), keep

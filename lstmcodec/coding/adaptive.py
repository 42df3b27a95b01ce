"""Spatially adaptive bit rates: each tile of the image stops receiving iterations once its own quality is reached.

The encoder measures the local MS-SSIM of every tile after each iteration; a tile that has reached its target, or
that the last iteration improved by less than a minimum gain, gets no more bits. The minimum gain is searched by
bisection for the smallest file that reaches the whole image's target. The file stores the iteration map (format
version 2) and, per iteration, only the bits of the tiles still live.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from lstmcodec.format import tiling
from lstmcodec.coding import framing
from lstmcodec.coding.codec import Codec
from lstmcodec.coding.framing import EncodeResult
from lstmcodec.coding.tensors import bits_to_plane, check_iteration_count, mask_tensor, to_rgb, to_tensor
from lstmcodec.errors import CodecError
from lstmcodec.geometry import BLOCK, ceil_div
from lstmcodec.io.imageio import SourceImage
from lstmcodec.format.itermap import MAP_TILES, block_counts, encode_map
from lstmcodec.metrics import local_ms_ssim, ms_ssim

TILE = 32                      # default tile side in pixels
MIN_GAIN_RANGE = (1e-4, 0.1)   # the bisection's bounds on the minimum gain of an iteration (MS-SSIM)
FIRST_MIN_GAIN = 0.01          # where it starts


def tile_quality(x: torch.Tensor, x_hat: torch.Tensor, tile_blocks: int) -> np.ndarray:
    """Mean local MS-SSIM (metrics.local_ms_ssim) of every tile of tile_blocks x tile_blocks blocks."""
    q = local_ms_ssim(x + 0.5, (x_hat.clamp(-0.5, 0.5) + 0.5))[:, None]
    side = tile_blocks * BLOCK
    q = F.pad(q, (0, -q.shape[-1] % side, 0, -q.shape[-2] % side), mode="replicate")
    return F.avg_pool2d(q, side)[0, 0].cpu().numpy()


@dataclass
class AdaptivePass:
    planes: list[np.ndarray]       # the bit planes, 0 at stopped blocks
    masks: list[np.ndarray]        # the blocks each iteration holds
    counts: np.ndarray             # the iteration map: iterations each of its tiles received
    tile: int                      # the map's tile side in blocks: the pass's tiles, or 1 where a linear tail stopped
                                   # blocks inside a live tile
    rgb: np.ndarray                # the reconstruction


def adaptive_pass(codec: Codec, x: torch.Tensor, h: int, w: int, target: float, max_iterations: int,
                  tile_blocks: int, min_gain: float = -math.inf,
                  until: Callable[[np.ndarray], bool] | None = None) -> AdaptivePass:
    """Run the recurrence, stopping each tile once its local MS-SSIM reaches `target`, or once an
    iteration raised it by less than `min_gain` (a tile the model cannot improve stops costing bits);
    with target inf and no min_gain every tile runs (no quality map is computed). A model's linear tail
    sends its stages, inside live tiles, only to the blocks they pay for (tail.Gate, as a plain encode does), and the
    pass ends where no block receives one. `until(rgb)`, if given, ends the pass early once the whole reconstruction
    satisfies it."""
    grid = (x.shape[2] // BLOCK, x.shape[3] // BLOCK)
    active = np.ones((ceil_div(grid[0], tile_blocks), ceil_div(grid[1], tile_blocks)), dtype=bool)
    quality = np.zeros(active.shape)
    stages = codec.tail_gate(x, max_iterations)
    planes, masks, rgb = [], [], np.zeros(0)
    sent: list[np.ndarray] = []

    def gate(t: int, x_hat: torch.Tensor) -> torch.Tensor | None:
        tiles = block_counts(active, tile_blocks, grid)
        stage = stages(t, x_hat) if stages is not None else None
        sent.append(tiles if stage is None else tiles & (stage[0, 0] > 0).cpu().numpy())
        return None if t == 0 else mask_tensor(sent[-1], x.device)

    for b, x_hat in codec.iterate(x, max_iterations, gate):
        if not sent[-1].any():   # the tail's gate stopped every block still live
            break
        planes.append(bits_to_plane(b))
        masks.append(sent[-1])
        rgb = to_rgb(x_hat, h, w)
        if until is not None and until(rgb):
            break
        if target < math.inf or min_gain > -math.inf:
            now = tile_quality(x, x_hat, tile_blocks)
            active &= (now < target) & (now - quality >= min_gain)
            quality = now
        if not active.any():
            break
    counts, tile = iteration_map(sum(m.astype(np.int64) for m in masks), tile_blocks)
    return AdaptivePass(planes, masks, counts, tile, rgb)


def iteration_map(per_block: np.ndarray, tile_blocks: int) -> tuple[np.ndarray, int]:
    """The map of blocks' counts: per tile of tile_blocks where every tile's blocks agree, else per block."""
    tiles = per_block[::tile_blocks, ::tile_blocks]
    if np.array_equal(block_counts(tiles, tile_blocks, per_block.shape), per_block):
        return tiles, tile_blocks
    return per_block, 1


def encode_adaptive(codec: Codec, src: SourceImage, quality: float, max_iterations: int = 16, tile: int = TILE,
                    tries: int = 4) -> tuple[EncodeResult, AdaptivePass]:
    """Spatially adaptive bit rates. Every tile stops receiving iterations once its local MS-SSIM
    reaches the tile target 1 - (1 - quality) / 2 (tiles stopped right at `quality` would leave the
    image just below it), or once an iteration raised it by less than a minimum gain g (a tile the
    model improves slowly costs bits for little). g is searched (bisection on log g over MIN_GAIN_RANGE,
    `tries` encoder passes) for the smallest file whose whole-image MS-SSIM reaches `quality`.
    Uniform iterations are a special case of a map (every tile the same count) and a candidate too:
    the fewest that reach `quality`, so an adaptive file is never larger than a uniform one. If nothing
    reaches `quality`, every tile gets every iteration. The file stores the iteration map (format
    version 2), or is a plain file when uniform iterations won."""
    check_iteration_count(max_iterations)
    if tile % BLOCK or tile // BLOCK not in MAP_TILES:
        raise CodecError(f"tile must be one of {', '.join(str(BLOCK * t) for t in MAP_TILES)} pixels")
    h, w = src.rgb.shape[:2]
    if tiling.plan(w, h) is not None:
        raise CodecError(f"--adaptive works on images of up to {tiling.THRESHOLD} pixels; "
                         f"{w}x{h} is coded in tiles (encode it without --adaptive)")
    notices = list(src.notices)
    tb = tile // BLOCK
    with torch.inference_mode():
        x = to_tensor(src.rgb, codec.device)
        uniform = adaptive_pass(codec, x, h, w, math.inf, max_iterations, tb, until=lambda rgb: ms_ssim(rgb, src.rgb) >= quality)
        candidates = [uniform] if ms_ssim(uniform.rgb, src.rgb) >= quality else []
        lo, hi = (math.log(g) for g in MIN_GAIN_RANGE)
        log_gain = math.log(FIRST_MIN_GAIN)
        for _ in range(tries if candidates else 0):
            run = adaptive_pass(codec, x, h, w, 1 - (1 - quality) / 2, max_iterations, tb, math.exp(log_gain))
            if ms_ssim(run.rgb, src.rgb) >= quality:   # reached: try stopping tiles earlier
                candidates.append(run)
                lo = log_gain
            else:
                hi = log_gain
            log_gain = (lo + hi) / 2
    if not candidates:
        notices.append(f"MS-SSIM {quality} not reached in {max_iterations} iterations; kept them all")
        candidates = [uniform]
    files = [adaptive_file(codec, src, run) for run in candidates]
    best = min(range(len(files)), key=lambda i: len(files[i]))
    return EncodeResult(files[best], notices), candidates[best]


def adaptive_file(codec: Codec, src: SourceImage, run: AdaptivePass) -> bytes:
    """The .lstm file (version 2) of an adaptive pass: its iteration map, then only the live blocks' bits.
    A map where every tile has the same count is a plain file (version 1): no map bytes to pay for."""
    coder = codec.plane_coder()
    if (run.counts == run.counts.flat[0]).all():
        return framing.frame(codec, src, [coder.encode(p) for p in run.planes])
    payloads = [coder.encode(p, m) for p, m in zip(run.planes, run.masks)]
    return framing.frame(codec, src, payloads, encode_map(run.counts, run.tile))

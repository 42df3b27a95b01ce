"""Images too large for one pass of the networks: tiled files (overlapping tiles, each its own recurrence,
blended) and untiled files decoded one region at a time with the decoder's margin (bounded memory)."""
from __future__ import annotations

import numpy as np
import torch

from lstmcodec.format import tiling
from lstmcodec.coding.tensors import bits_to_plane, mask_tensor, pad_rgb, plane_to_bits, to_rgb, to_tensor
from lstmcodec.geometry import BLOCK, padded
from lstmcodec.nets.config import CodecConfig
from lstmcodec.nets.decoding import reconstruct

REGION = 512   # side in pixels of the regions a large untiled file is decoded in (with their margins, ~0.4 MP)


def encode_tiles(codec, rgb: np.ndarray, iterations: int, plan: tiling.Tiling) -> list[np.ndarray]:
    """Run the recurrence on each tile of an H x W x 3 uint8 image (padded to whole blocks first) in turn; returns each
    iteration's plane of the tiled grid."""
    rgb = pad_rgb(rgb)
    height, width = rgb.shape[:2]
    planes = [np.zeros((codec.config.bits, *plan.grid(height, width)), np.uint8) for _ in range(iterations)]
    for tile in plan.tiles(height, width):
        x = to_tensor(rgb[tile.y0:tile.y1, tile.x0:tile.x1], codec.device)
        for plane, (b, _) in zip(planes, codec.iterate(x, iterations, decode_last=False)):
            plane[:, tile.rows, tile.cols] = bits_to_plane(b)
    return planes


def decode_tiles(codec, planes: list[np.ndarray], plan: tiling.Tiling, height: int, width: int,
                 tail: bool = True) -> np.ndarray:
    """Decode each tile from its blocks of the tiled grid and blend the tiles; returns H x W x 3 uint8."""
    ph, pw = padded(height), padded(width)
    canvas = torch.zeros(1, 3, ph, pw, device=codec.device)
    for tile in plan.tiles(ph, pw):
        for x_hat in reconstruct(codec, (plane_to_bits(p[:, tile.rows, tile.cols], codec.device) for p in planes),
                                 every=False, tail=tail):
            pass
        canvas[:, :, tile.y0:tile.y1, tile.x0:tile.x1] += x_hat * torch.from_numpy(tile.weights).to(codec.device)
        del x_hat
    return to_rgb(canvas, height, width)


def decoder_margin(config: CodecConfig, iterations: int) -> int:
    """Pixels around an output region that the decoder's output depends on (its receptive radius, rounded up
    to whole blocks, plus one): 3x3 input kernels at 1/16, 1/8, 1/4 and 1/2 resolution reach 16 + 8 + 4 + 2 px;
    3x3 hidden kernels in the last two cells reach 4 + 2 px further with every run."""
    runs = iterations + config.priming
    radius = 30 + (6 * runs if config.decoder_hidden_kernel == 3 else 0)
    return (-(-radius // BLOCK) + 1) * BLOCK


def decode_regions(codec, planes: list[np.ndarray], masks: list[np.ndarray | None], height: int, width: int,
                   tail: bool = True, side: int = REGION) -> np.ndarray:
    """An untiled file decoded one region of side x side pixels at a time, each from its blocks and a margin of
    decoder_margin pixels (cut off afterwards): the same pixels as one pass over the whole image, to float
    rounding, with the memory of one region. Returns H x W x 3 uint8."""
    ph, pw = padded(height), padded(width)
    m = decoder_margin(codec.config, len(planes))
    out = np.empty((height, width, 3), np.uint8)
    for y0 in range(0, ph, side):
        for x0 in range(0, pw, side):
            y1, x1 = min(y0 + side, ph), min(x0 + side, pw)
            ya, xa, yb, xb = max(0, y0 - m), max(0, x0 - m), min(ph, y1 + m), min(pw, x1 + m)
            rows, cols = slice(ya // BLOCK, yb // BLOCK), slice(xa // BLOCK, xb // BLOCK)
            region_masks = [None if k is None or k[rows, cols].all() else mask_tensor(k[rows, cols], codec.device)
                            for k in masks]
            bits = (plane_to_bits(p[:, rows, cols], codec.device) * (1 if k is None else k)
                    for p, k in zip(planes, region_masks))
            for x_hat in reconstruct(codec, bits, region_masks, every=False, tail=tail):
                pass
            rgb = to_rgb(x_hat[..., y0 - ya:y1 - ya, x0 - xa:x1 - xa], y1 - y0, x1 - x0)
            out[y0:min(y1, height), x0:min(x1, width)] = rgb[:min(y1, height) - y0, :min(x1, width) - x0]
    return out

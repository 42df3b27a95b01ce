"""Pixels and bits <-> the networks' tensors, and the checks every coding path makes (iterations, size, memory)."""
from __future__ import annotations

import contextlib
import numbers

import numpy as np
import torch
from torch.nn import functional as F

from lstmcodec.errors import CodecError
from lstmcodec.format import container
from lstmcodec.geometry import BLOCK, padded


def to_tensor(rgb: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """H x W x 3 uint8 -> 1 x 3 x H' x W' in [-0.5, 0.5], edge-padded to whole blocks, channels-last."""
    h, w = rgb.shape[:2]
    if not rgb.flags.writeable:   # np.asarray(PIL image) is read-only, and torch warns of such arrays
        rgb = rgb.copy()
    x = torch.from_numpy(rgb).to(device).permute(2, 0, 1).unsqueeze(0).float() / 255.0 - 0.5
    ph, pw = padded(h) - h, padded(w) - w
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x.contiguous(memory_format=torch.channels_last)


def pad_rgb(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 edge-padded to whole blocks (as to_tensor pads), for cutting tiles from."""
    h, w = rgb.shape[:2]
    return np.pad(rgb, ((0, padded(h) - h), (0, padded(w) - w), (0, 0)), mode="edge")


def to_rgb(x_hat: torch.Tensor, h: int, w: int) -> np.ndarray:
    """A reconstruction (1 x 3 x H' x W' in [-0.5, 0.5]) as the H x W x 3 uint8 image it decodes to."""
    x = ((x_hat[0, :, :h, :w].clamp(-0.5, 0.5) + 0.5) * 255.0).round().to(torch.uint8)
    return x.permute(1, 2, 0).cpu().numpy()


def bits_to_plane(b: torch.Tensor) -> np.ndarray:
    """A ±1 tensor (1 x C x h x w) as a C x h x w uint8 array of 0/1 (0 where a block got no bits)."""
    return (b[0] > 0).to(torch.uint8).cpu().numpy()


def plane_to_bits(plane: np.ndarray, device: torch.device) -> torch.Tensor:
    b = torch.from_numpy(plane.astype(np.float32) * 2 - 1).unsqueeze(0).to(device)
    return b.contiguous(memory_format=torch.channels_last)


def mask_tensor(mask: np.ndarray, device: torch.device) -> torch.Tensor:
    """An H/16 x W/16 boolean block mask as the 1 x 1 x H/16 x W/16 0/1 tensor the network takes."""
    return torch.from_numpy(mask.astype(np.float32))[None, None].to(device)


@contextlib.contextmanager
def memory_guard(what: str):
    """An allocation that fails while the networks run (MemoryError, or torch's RuntimeError for a CPU or GPU
    allocation) becomes one CodecError line."""
    try:
        yield
    except MemoryError:
        raise CodecError(f"not enough memory to {what}") from None
    except RuntimeError as e:
        if "alloc" in str(e) or "out of memory" in str(e):
            raise CodecError(f"not enough memory to {what}") from None
        raise


def check_iterations(n) -> int:
    """An iteration count as an int (numpy's integers too); CodecError for a float, a bool or text."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise CodecError(f"iterations must be a whole number, not {n!r}")
    return int(n)


def check_iteration_count(n) -> int:
    """An iteration count to encode: a whole number (check_iterations) in 1..container.MAX_ITERATIONS."""
    if not 1 <= check_iterations(n) <= container.MAX_ITERATIONS:
        raise CodecError(f"iterations must be between 1 and {container.MAX_ITERATIONS}")
    return int(n)


def check_size(width: int, height: int) -> None:
    """Refuses an image over the pixel cap (container.MAX_PIXELS, counted after padding to whole blocks)."""
    if padded(width) * padded(height) > container.MAX_PIXELS:
        raise CodecError(f"image size {width}x{height} exceeds the limit of {container.MAX_PIXELS} pixels "
                         f"(counted after padding to {BLOCK}-pixel blocks)")

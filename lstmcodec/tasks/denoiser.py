"""Denoising photographs (and digits) with a bundled or given denoiser.

Whole images of any size: the residual networks (plain stack or U-Net) run on tiles whose margins cover their receptive field,
so the stitched result equals a single pass over the whole image (no seams) while memory stays bounded.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from lstmcodec.errors import CodecError
from lstmcodec.io.imageio import open_image, prepare, to_pil
from lstmcodec.models.zoo import DEFAULT_DENOISER, LoadedNet, load_net

TILE = 512  # pixels per tile side, before margins


def get_denoiser(name_or_path: str = DEFAULT_DENOISER, device: str = "cpu") -> LoadedNet:
    """A bundled denoiser by name, or a weights file by path (loaded once per process)."""
    return load_net("denoise", name_or_path, device)


def margin(net: LoadedNet) -> int:
    """Pixels of context each output pixel depends on (the network's receptive radius, with room to spare,
    on its input grid); 0 for the autoencoders, which run on whole images."""
    return getattr(net.model, "radius", 0)


def denoise_array(x: np.ndarray, net: LoadedNet, tile: int = TILE, ensemble: bool = False) -> np.ndarray:
    """H x W x C uint8 (C = the network's channels) -> denoised H x W x C uint8."""
    x = np.array(x, dtype=np.uint8)  # a writable copy: the array of a decoded image may be read-only
    t = torch.from_numpy(x).permute(2, 0, 1)[None].float().div(255)
    out = denoise_tensor(t, net, tile, ensemble)
    return (out[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


@torch.inference_mode()
def denoise_tensor(t: torch.Tensor, net: LoadedNet, tile: int = TILE, ensemble: bool = False) -> torch.Tensor:
    """1 x C x H x W float in [0, 1] (noisy values may stray outside) -> the denoised float image, on the CPU.

    ensemble: the mean of 8 passes over the image's rotations and mirror images (the "self-ensemble"
    of the denoising literature): a little more PSNR for 8 times the work."""
    if not ensemble:
        return _denoise_tiled(t, net, tile)
    total = torch.zeros_like(t)
    for k in range(4):
        for mirror in (False, True):
            v = torch.rot90(t, k, (-2, -1))
            out = _denoise_tiled(v.flip(-1) if mirror else v, net, tile)
            total += torch.rot90(out.flip(-1) if mirror else out, -k, (-2, -1))
    return total / 8


MIN_SIDE = 32   # smaller images are padded to this side (edge pixels repeated) and cut back: the networks' kernels
               # and poolings need a few pixels of input


def _denoise_tiled(t: torch.Tensor, net: LoadedNet, tile: int) -> torch.Tensor:
    h, w = t.shape[-2:]
    if (h < MIN_SIDE or w < MIN_SIDE) and net.config.get("size") is None:   # not a network of one fixed size
        padded = torch.nn.functional.pad(t, (0, max(0, MIN_SIDE - w), 0, max(0, MIN_SIDE - h)), mode="replicate")
        return _denoise_tiled(padded, net, tile)[..., :h, :w]
    device = next(net.model.parameters()).device
    m = margin(net)
    tile = -(-tile // getattr(net.model, "align", 1)) * getattr(net.model, "align", 1)  # tiles start on the input grid
    if m == 0 or (h <= tile and w <= tile):
        return net.model(t.to(device)).float().cpu()
    out = torch.empty_like(t)
    for y in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y + tile, h), min(x0 + tile, w)
            ya, xa = max(0, y - m), max(0, x0 - m)
            yb, xb = min(h, y1 + m), min(w, x1 + m)
            piece = net.model(t[..., ya:yb, xa:xb].to(device)).float().cpu()
            out[..., y:y1, x0:x1] = piece[..., y - ya:y1 - ya, x0 - xa:x1 - xa]
    return out


def denoise(source, model: str = DEFAULT_DENOISER, device: str = "cpu", notices: list[str] | None = None,
            ensemble: bool = False) -> Image.Image:
    """Denoise an image (path, bytes, PIL image or uint8 array); its mode, alpha and ICC profile are kept.
    ensemble: average 8 passes over rotations and mirror images (8x the time, a little more PSNR)."""
    src = prepare(open_image(source))
    if notices is not None:
        notices += src.notices
    net = get_denoiser(model, device)
    side = net.config.get("size")  # a network of one fixed input size (the dense autoencoder)
    h, w = src.rgb.shape[:2]
    if side is not None and (h, w) != (side, side):
        raise CodecError(f"the denoiser '{net.name}' takes only {side}x{side} images, not {w}x{h}")
    channels = net.config.get("in_channels", 3)
    if channels == 1:
        gray = np.asarray(Image.fromarray(src.rgb).convert("L"))[..., None]
        rgb = np.repeat(denoise_array(gray, net, ensemble=ensemble), 3, axis=2)
        mode = "LA" if src.alpha is not None else "L"
    else:
        rgb = denoise_array(src.rgb, net, ensemble=ensemble)
        mode = src.mode
    return to_pil(rgb, mode, src.alpha, src.icc)

"""Image <-> .lstm bytes: pad, run the recurrence, entropy-code the bit planes, frame them.

    encode(image, iterations=8) -> bytes
    decode(data, iterations=None) -> PIL.Image.Image
"""
from __future__ import annotations

import functools
import io
import os
import zlib
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from . import container, entropy
from .errors import CodecError
from .imageio import SourceImage, open_image, prepare, to_pil
from .nets.recurrent import BLOCK
from .runtime import select_device
from .weights import DEFAULT_CODEC, LoadedCodec, load_codec, registry


@functools.lru_cache(maxsize=4)
def get_model(model: str = DEFAULT_CODEC, device: str = "cpu") -> LoadedCodec:
    """Load (once per process) a codec by bundled name or weights path."""
    try:
        return load_codec(model, select_device(device))
    except (ValueError, FileNotFoundError) as e:
        raise CodecError(str(e)) from None


def _resolve_device(device: str) -> str:
    try:
        return str(select_device(device))
    except ValueError as e:
        raise CodecError(str(e)) from None


# ----------------------------------------------------------------------------- pixels <-> tensors


def _to_tensor(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    """H x W x 3 uint8 -> 1 x 3 x H' x W' in [-0.5, 0.5], edge-padded to multiples of 16."""
    h, w = rgb.shape[:2]
    x = torch.from_numpy(rgb).to(device).permute(2, 0, 1).unsqueeze(0).float() / 255.0 - 0.5
    ph, pw = -h % BLOCK, -w % BLOCK
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x


def _to_rgb(x_hat: torch.Tensor, h: int, w: int) -> np.ndarray:
    x = ((x_hat[0, :, :h, :w].clamp(-0.5, 0.5) + 0.5) * 255.0).round().to(torch.uint8)
    return x.permute(1, 2, 0).cpu().numpy()


def _bits_to_plane(b: torch.Tensor) -> np.ndarray:
    """A ±1 tensor (1 x C x h x w) as a C x h x w uint8 array of 0/1."""
    return (b[0] > 0).to(torch.uint8).cpu().numpy()


def _plane_to_bits(plane: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(plane.astype(np.float32) * 2 - 1).unsqueeze(0).to(device)


# ----------------------------------------------------------------------------- alpha and ICC chunks


def _pack_alpha(alpha: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(alpha, "L").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _unpack_alpha(payload: bytes, w: int, h: int) -> np.ndarray:
    if not payload.startswith(b"\x89PNG\r\n\x1a\n"):
        raise CodecError("corrupt alpha chunk")
    try:
        with Image.open(io.BytesIO(payload)) as im:
            if im.size != (w, h) or im.mode != "L":
                raise CodecError("alpha chunk does not match the image size")
            im.load()
            return np.asarray(im).copy()
    except CodecError:
        raise
    except Exception:
        raise CodecError("corrupt alpha chunk") from None


def _unpack_icc(payload: bytes) -> bytes:
    try:
        d = zlib.decompressobj()
        icc = d.decompress(payload, 1 << 24)
        if d.unconsumed_tail:
            raise CodecError("ICC profile chunk is larger than 16 MiB")
        return icc
    except zlib.error:
        raise CodecError("corrupt ICC profile chunk") from None


# ----------------------------------------------------------------------------- the API


@dataclass
class EncodeResult:
    data: bytes
    notices: list[str]


def encode_image(src: SourceImage, iterations: int = 8, model: str = DEFAULT_CODEC, device: str = "cpu",
                 on_iteration: Callable[[int], None] | None = None) -> EncodeResult:
    """Encode a prepared image; `on_iteration(k)` is called after iteration k (the bench times it)."""
    if not 1 <= iterations <= container.MAX_ITERATIONS:
        raise CodecError(f"iterations must be between 1 and {container.MAX_ITERATIONS}")
    h, w = src.rgb.shape[:2]
    if container.padded_pixels(w, h) > container.MAX_PIXELS:
        raise CodecError(f"image size {w}x{h} exceeds the limit of {container.MAX_PIXELS} pixels "
                         "(counted after padding to 16-pixel blocks)")
    codec = get_model(model, _resolve_device(device))
    dev = next(codec.model.parameters()).device
    payloads: list[bytes] = []
    coder = entropy.PlaneCoder(codec.entropy_prior, codec.model.config.bits)
    with torch.inference_mode():
        x = _to_tensor(src.rgb, dev)
        for b, _ in codec.model.iterate(x, iterations):
            payloads.append(coder.encode(_bits_to_plane(b)))
            if on_iteration is not None:
                on_iteration(len(payloads))
    header = container.Header(w, h, src.mode, iterations, codec.name, codec.fingerprint)
    alpha = _pack_alpha(src.alpha) if src.alpha is not None else None
    icc = zlib.compress(src.icc, 9) if src.icc else None
    return EncodeResult(container.write(header, payloads, alpha, icc), src.notices)


@dataclass
class RateTarget:
    """What `encode_to_target` aims for: exactly one of bpp, size (bytes) or quality (MS-SSIM)."""
    bpp: float | None = None
    size: int | None = None
    quality: float | None = None


def encode_to_target(src: SourceImage, target: RateTarget, max_iterations: int = 16, model: str = DEFAULT_CODEC,
                     device: str = "cpu") -> tuple[EncodeResult, int]:
    """Rate control by prefix: encode once with `max_iterations`, keep the best prefix.

    bpp / size: the most iterations whose whole file fits. quality: the fewest iterations whose
    reconstruction reaches that MS-SSIM (RGB) against the input (all of them if none does).
    Returns the result and the iterations kept."""
    from .metrics import ms_ssim

    full = encode_image(src, max_iterations, model, device)
    h, w = src.rgb.shape[:2]
    if target.quality is not None:
        keep = max_iterations
        for k, image in enumerate(decode_progressive(full.data, model=model, device=device), start=1):
            if ms_ssim(np.asarray(image.convert("RGB")), src.rgb) >= target.quality:
                keep = k
                break
        else:
            full.notices.append(f"MS-SSIM {target.quality} not reached in {max_iterations} iterations; kept them all")
    else:
        budget = target.size if target.size is not None else target.bpp * w * h / 8
        fi = info(full.data)
        sizes = (fi.file_bytes - sum(fi.iteration_bytes) + np.cumsum(fi.iteration_bytes)).tolist()  # each prefix file
        fitting = [k for k, n in enumerate(sizes, start=1) if n <= budget]
        if not fitting:
            raise CodecError(f"even 1 iteration needs {sizes[0]} bytes ({8 * sizes[0] / (w * h):.4f} bpp), over the budget")
        keep = fitting[-1]
    return EncodeResult(container.truncate(full.data, keep), full.notices), keep


def encode(image, iterations: int = 8, model: str = DEFAULT_CODEC, device: str = "cpu") -> bytes:
    """Compress an image (path, PIL image, bytes or H x W x 3 uint8 array) to .lstm bytes."""
    return encode_image(prepare(open_image(image)), iterations, model, device).data


def decode(data: bytes, iterations: int | None = None, model: str | None = None, device: str = "cpu") -> Image.Image:
    """Decode .lstm bytes (or a path) to a PIL image, using the first `iterations` iterations (all by default).

    `model` overrides the bundled model named in the header (a path to a weights file); either way
    the weights' fingerprint must match the header's, or the file is refused.
    """
    for image in decode_progressive(data, iterations, model, device):
        pass
    return image


def decode_progressive(data: bytes, iterations: int | None = None, model: str | None = None,
                       device: str = "cpu") -> Iterator[Image.Image]:
    """Yield the decoded image after each iteration 1..iterations: one decoder pass for every prefix.
    The k-th image equals decode(data, iterations=k)."""
    if isinstance(data, (str, os.PathLike)):
        data = read_file(data)
    f = container.read(bytes(data))
    hd = f.header
    n = len(f.iterations) if iterations is None else iterations
    if n < 1:
        raise CodecError("iterations must be at least 1")
    if n > len(f.iterations):
        raise CodecError(f"the file holds {len(f.iterations)} iterations, {n} requested")
    codec = _model_for(hd, model, _resolve_device(device))
    dev = next(codec.model.parameters()).device
    shape = (codec.model.config.bits, -(-hd.height // BLOCK), -(-hd.width // BLOCK))
    max_payload = 1 + (shape[0] * shape[1] * shape[2] + 7) // 8
    planes = []
    coder = entropy.PlaneCoder(codec.entropy_prior, codec.model.config.bits)
    for payload in f.iterations[:n]:  # all entropy decoding first: a corrupt chunk fails before any output
        if len(payload) > max_payload:
            raise CodecError("iteration chunk is larger than its image allows")
        planes.append(coder.decode(payload, shape))
    alpha = _unpack_alpha(f.alpha, hd.width, hd.height) if f.alpha is not None else None
    icc = _unpack_icc(f.icc) if f.icc is not None else None
    with torch.inference_mode():
        for x_hat in codec.model.reconstruct(_plane_to_bits(p, dev) for p in planes):
            yield to_pil(_to_rgb(x_hat, hd.height, hd.width), hd.mode, alpha, icc)


def _model_for(hd: container.Header, model: str | None, device: str) -> LoadedCodec:
    if model is None:
        if hd.model not in registry().get("codec", {}):
            raise CodecError(f"the file was made with model '{hd.model}', which is not bundled; pass its weights with --model PATH")
        model = hd.model
    codec = get_model(model, device)
    if codec.fingerprint != hd.fingerprint:
        raise CodecError(f"model mismatch: the file was made with '{hd.model}' ({hd.fingerprint.hex()}), "
                         f"not with these weights '{codec.name}' ({codec.fingerprint.hex()})")
    return codec


def read_file(path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise CodecError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CodecError(f"{path}: is a directory") from None
    except OSError as e:
        raise CodecError(f"{path}: cannot read ({e.strerror})") from None


@dataclass
class FileInfo:
    width: int
    height: int
    mode: str
    iterations: int               # iteration chunks present
    declared_iterations: int      # iteration chunks the encoder wrote
    model: str
    fingerprint: str
    file_bytes: int
    header_bytes: int
    iteration_bytes: list[int]    # each iteration chunk, framing included
    bpp: float                    # whole file
    bpp_per_iteration: list[float]  # cumulative: file truncated after k iterations

    def to_dict(self) -> dict:
        from dataclasses import asdict
        return asdict(self)


def info(data: bytes) -> FileInfo:
    f = container.read(bytes(data))
    hd, px = f.header, f.header.width * f.header.height
    meta = len(data) - sum(f.chunk_sizes)
    cumulative = np.cumsum(f.chunk_sizes) + meta
    return FileInfo(hd.width, hd.height, hd.mode, len(f.iterations), hd.iterations, hd.model, hd.fingerprint.hex(),
                    len(data), f.header_size, list(f.chunk_sizes), 8 * len(data) / px,
                    [float(8 * c / px) for c in cumulative])

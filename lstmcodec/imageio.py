"""Reading and writing images: modes, alpha, 16-bit, EXIF orientation, ICC profiles, atomic writes."""
from __future__ import annotations

import io
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import CodecError


@dataclass
class SourceImage:
    rgb: np.ndarray                  # H x W x 3 uint8 (grayscale replicated into three channels)
    mode: str                        # what decode gives back: "L", "RGB", "RGBA" or "LA"
    alpha: np.ndarray | None = None  # H x W uint8, kept losslessly
    icc: bytes | None = None
    notices: list[str] = field(default_factory=list)


def open_image(source, name: str = "image") -> Image.Image:
    """A path, bytes, PIL image or H x W (x 3|4) uint8 array as a fully loaded PIL image."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim not in (2, 3) or (source.ndim == 3 and source.shape[2] not in (1, 3, 4)):
            raise CodecError("an array image must be H x W, H x W x 3 or H x W x 4 uint8")
        if source.ndim == 3 and source.shape[2] == 1:
            source = source[..., 0]
        return Image.fromarray(np.ascontiguousarray(source))
    if isinstance(source, (bytes, bytearray)):
        fp, name = io.BytesIO(source), name
    elif isinstance(source, (str, os.PathLike)):
        fp, name = source, str(source)
        if not os.path.exists(fp):
            raise CodecError(f"{name}: no such file")
        if os.path.isdir(fp):
            raise CodecError(f"{name}: is a directory")
    else:
        raise CodecError(f"cannot read an image from a {type(source).__name__}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(fp)
            im.load()
        return im
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise CodecError(f"{name}: image is too large (over Pillow's limit of {Image.MAX_IMAGE_PIXELS} pixels)") from None
    except UnidentifiedImageError:
        raise CodecError(f"{name}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise CodecError(f"{name}: cannot read image ({e})") from None


def prepare(im: Image.Image) -> SourceImage:
    """Apply EXIF orientation and bring any Pillow mode to RGB (+ alpha), with notices for lossy conversions."""
    notices: list[str] = []
    icc = im.info.get("icc_profile") or None
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block must not stop the encode
        notices.append("ignored an unreadable EXIF orientation")
    mode = im.mode
    if mode == "P" or mode == "PA":
        has_alpha = mode == "PA" or "transparency" in im.info
        notices.append("palette image converted to " + ("RGBA" if has_alpha else "RGB"))
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif mode == "CMYK":
        notices.append("CMYK image converted to RGB")
        icc = None  # a CMYK profile does not describe the RGB pixels
        im = im.convert("RGB")
    elif mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        notices.append(f"{mode} (16/32-bit) image converted to 8-bit grayscale")
        a = np.asarray(im, dtype=np.float64)
        scale = 255.0 / 65535.0 if a.max(initial=0) > 255 else 1.0
        im = Image.fromarray(np.clip(np.round(a * scale), 0, 255).astype(np.uint8), "L")
    elif mode == "F":
        notices.append("floating-point image converted to 8-bit grayscale")
        im = im.convert("L")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("RGBX", "YCbCr", "LAB", "HSV"):
        notices.append(f"{mode} image converted to RGB")
        im = im.convert("RGB")
    elif mode in ("RGBa", "La"):
        im = im.convert("RGBA" if mode == "RGBa" else "LA")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        notices.append(f"{mode} image converted to RGB")
        im = im.convert("RGB")
    mode = im.mode
    alpha = np.asarray(im.getchannel("A")).copy() if mode in ("RGBA", "LA") else None
    rgb = np.asarray(im.convert("RGB")).copy()
    if alpha is not None and alpha.min() == 255:
        notices.append("fully opaque alpha channel dropped")
        mode, alpha = mode[:-1] if mode == "LA" else "RGB", None
    return SourceImage(rgb, mode, alpha, icc, notices)


def to_pil(rgb: np.ndarray, mode: str, alpha: np.ndarray | None, icc: bytes | None) -> Image.Image:
    im = Image.fromarray(rgb, "RGB")
    if mode in ("L", "LA"):
        im = im.convert("L")
    if alpha is not None:
        im.putalpha(Image.fromarray(alpha, "L"))
    if icc:
        im.info["icc_profile"] = icc
    return im


def encode_image_bytes(im: Image.Image, fmt: str) -> bytes:
    """Serialise a decoded image in format `fmt` (png, jpeg, webp, ...), keeping its ICC profile."""
    fmt = fmt.upper()
    fmt = {"JPG": "JPEG", "TIF": "TIFF", "J2K": "JPEG2000", "JP2": "JPEG2000"}.get(fmt, fmt)
    if fmt in ("JPEG", "PPM") and im.mode in ("RGBA", "LA"):
        im = im.convert("RGB" if im.mode == "RGBA" else "L")
        print("notice: alpha channel dropped (the output format has none)", file=sys.stderr)
    buf = io.BytesIO()
    kwargs = {}
    if im.info.get("icc_profile") and fmt in ("PNG", "JPEG", "WEBP", "TIFF", "JPEG2000", "AVIF"):
        kwargs["icc_profile"] = im.info["icc_profile"]
    if fmt == "JPEG":
        kwargs["quality"] = 95
    elif fmt == "WEBP":
        kwargs["lossless"] = True
    try:
        im.save(buf, format=fmt, **kwargs)
    except (KeyError, ValueError, OSError) as e:
        raise CodecError(f"cannot write {fmt} images ({e})") from None
    return buf.getvalue()


def format_for(path: str | os.PathLike, default: str = "png") -> str:
    ext = Path(path).suffix.lower().lstrip(".")
    if not ext:
        return default
    known = {e.lstrip(".").lower(): f for e, f in Image.registered_extensions().items()}
    if ext not in known:
        raise CodecError(f"{path}: unknown output format '.{ext}'")
    return ext


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename over it: never a partial file."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise CodecError(f"{path}: the folder {directory} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=directory)
    except OSError as e:
        raise CodecError(f"{path}: cannot write ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise CodecError(f"{path}: cannot write ({e.strerror})") from None
        raise

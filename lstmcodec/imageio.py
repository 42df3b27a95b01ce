"""Reading and writing images: modes, alpha, 16-bit, EXIF orientation, ICC profiles, atomic writes."""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
import zlib
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
        with warnings.catch_warnings(), quiet_stderr():
            warnings.simplefilter("ignore")  # Pillow's warnings about odd files are not the user's to read
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(fp)
            im.load()
        return im
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise CodecError(f"{name}: image is too large (over Pillow's limit of {Image.MAX_IMAGE_PIXELS} pixels)") from None
    except UnidentifiedImageError:
        raise CodecError(f"{name}: not an image file Pillow can read") from None
    except MemoryError:
        raise CodecError(f"{name}: not enough memory to read this image") from None
    except Exception as e:  # Pillow's plugins raise many types (NotImplementedError for unsupported DDS formats, ...)
        raise CodecError(f"{name}: cannot read image ({_one_line(e)})") from None


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


@contextlib.contextmanager
def quiet_stderr():
    """Silence what C libraries (libtiff, libpng, ...) print straight to file descriptor 2 while Pillow decodes or
    converts an image: the command line's promise is one line on stderr, and nothing else writes while it runs."""
    try:
        saved = os.dup(2)
    except OSError:   # no stderr to protect
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def prepare(im: Image.Image) -> SourceImage:
    """Apply EXIF orientation and bring any Pillow mode to RGB (+ alpha), with notices for lossy conversions.
    An image that cannot be converted is a CodecError."""
    try:
        with warnings.catch_warnings(), quiet_stderr():
            warnings.simplefilter("ignore")
            return _prepare(im)
    except CodecError:
        raise
    except MemoryError:
        raise CodecError("not enough memory to convert this image") from None
    except Exception as e:
        raise CodecError(f"cannot convert a {im.mode} image ({_one_line(e)})") from None


def _prepare(im: Image.Image) -> SourceImage:
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


# ----------------------------------------------------------------------------- the alpha and ICC chunks of a .lstm file


def pack_alpha(alpha: np.ndarray) -> bytes:
    """An H x W uint8 alpha channel as the payload of an alpha chunk: a PNG (lossless)."""
    buf = io.BytesIO()
    Image.fromarray(alpha, "L").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def unpack_alpha(payload: bytes, w: int, h: int) -> np.ndarray:
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


def pack_icc(icc: bytes) -> bytes:
    """An ICC profile as the payload of an ICC chunk: zlib-compressed."""
    return zlib.compress(icc, 9)


def unpack_icc(payload: bytes) -> bytes:
    try:
        d = zlib.decompressobj()
        icc = d.decompress(payload, 1 << 24)
        if d.unconsumed_tail:
            raise CodecError("ICC profile chunk is larger than 16 MiB")
        return icc
    except zlib.error:
        raise CodecError("corrupt ICC profile chunk") from None


# ----------------------------------------------------------------------------- decoded images as files


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


def read_file(path) -> bytes:
    """The bytes of a file, or CodecError with a one-line reason."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise CodecError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CodecError(f"{path}: is a directory") from None
    except OSError as e:
        raise CodecError(f"{path}: cannot read ({e.strerror})") from None


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

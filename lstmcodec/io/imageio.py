"""Reading and writing images: modes, alpha, 16-bit, EXIF orientation, ICC profiles (files: lstmcodec/io/files.py)."""
from __future__ import annotations

import contextlib
import io
import os
import threading
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lstmcodec.errors import CodecError


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
        with silenced():
            im = Image.open(fp)
            if im.width * im.height > Image.MAX_IMAGE_PIXELS:   # Pillow only warns up to twice its limit
                raise Image.DecompressionBombError("over the limit")
            raw = [t.args[0] if isinstance(t.args, tuple) else t.args for t in im.tile]
            if im.mode in ("RGB", "RGBA") and any(isinstance(r, str) and "16" in r for r in raw):
                im.info["lstmcodec_bits"] = 16   # Pillow keeps 8 of a 16-bit colour image's bits: said in a notice
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


COMMAND_LINE = False   # set by the command line (cli.main): it may silence file descriptor 2 and warnings


@contextlib.contextmanager
def silenced():
    """While Pillow decodes, converts or writes an image: in the command line's main thread, its warnings and what C
    libraries print to file descriptor 2 are silenced (the promise there is one line on stderr). A library caller's
    process is left alone: its stderr and warning filters are process-wide, and changing them from one of its
    threads races with the others."""
    if not COMMAND_LINE or threading.current_thread() is not threading.main_thread():
        yield
        return
    with warnings.catch_warnings(), quiet_stderr():
        warnings.simplefilter("ignore")
        yield


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
        with silenced():
            return _prepare(im)
    except CodecError:
        raise
    except MemoryError:
        raise CodecError("not enough memory to convert this image") from None
    except Exception as e:
        raise CodecError(f"cannot convert a {im.mode} image ({_one_line(e)})") from None


def _prepare(im: Image.Image) -> SourceImage:
    if im.width == 0 or im.height == 0:
        raise CodecError(f"empty image ({im.width}x{im.height} pixels)")
    notices: list[str] = []
    frames = getattr(im, "n_frames", 1)
    if isinstance(frames, int) and frames > 1:
        notices.append(f"only the first of its {frames} frames is coded")
    if im.info.get("lstmcodec_bits") == 16:
        notices.append(f"16-bit {im.mode} image reduced to 8 bits per channel")
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
        a = np.asarray(im, dtype=np.float64)
        bits = _declared_bits(im)
        if bits is None:   # no declared depth: the smallest of 8, 16 and 32 bits that holds the values
            top = a.max(initial=0)
            bits = 8 if top <= 255 else 16 if top <= 65535 else 32
        if a.min(initial=0) < 0:
            raise CodecError(f"a {mode} image with negative values: refused (no 8-bit meaning for them)")
        notices.append(f"{bits}-bit grayscale image converted to 8-bit (0..{2 ** bits - 1} scaled to 0..255)")
        im = Image.fromarray(np.clip(np.round(a * (255.0 / (2 ** bits - 1))), 0, 255).astype(np.uint8), "L")
    elif mode == "F":
        a = np.asarray(im, dtype=np.float64)
        lo, hi = (a.min(), a.max()) if a.size else (0.0, 0.0)
        if not np.isfinite(a).all() or lo < 0 or hi > 255:
            raise CodecError("a floating-point image with values outside 0..255 (or not finite): refused, as its "
                             "scale is unknown")
        scale = 255.0 if hi <= 1.0 else 1.0
        notices.append("floating-point image converted to 8-bit grayscale (" +
                       ("0..1 scaled to 0..255)" if scale == 255.0 else "values taken as 0..255)"))
        im = Image.fromarray(np.clip(np.round(a * scale), 0, 255).astype(np.uint8), "L")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("RGB", "L") and im.info.get("transparency") is not None:
        notices.append("colour-key transparency kept as an alpha channel")
        im = im.convert("RGBA" if mode == "RGB" else "LA")
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


def _declared_bits(im: Image.Image) -> int | None:
    """The bit depth an integer grayscale image's file declares: 16 for Pillow's I;16 modes and for PNG, PPM / PGM
    and FITS-less "I" images of those formats, TIFF's BitsPerSample; None where the file does not say."""
    if im.mode.startswith("I;16") or im.format in ("PNG", "PPM"):
        return 16
    tags = getattr(im, "tag_v2", None)
    if tags is not None and tags.get(258) is not None:
        bits = tags.get(258)
        bits = bits[0] if isinstance(bits, tuple) else bits
        return int(bits) if bits in (8, 16, 32) else None
    return None


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


def encode_image_bytes(im: Image.Image, fmt: str, notices: list[str] | None = None) -> bytes:
    """Serialise a decoded image in format `fmt` (png, jpeg, webp, ...), keeping its ICC profile; what the format
    cannot hold (alpha in JPEG or PPM) is said in `notices` when given."""
    fmt = fmt.upper()
    fmt = {"JPG": "JPEG", "TIF": "TIFF", "J2K": "JPEG2000", "JP2": "JPEG2000"}.get(fmt, fmt)
    if fmt in ("JPEG", "PPM") and im.mode in ("RGBA", "LA"):
        im = im.convert("RGB" if im.mode == "RGBA" else "L")
        if notices is not None:
            notices.append("alpha channel dropped (the output format has none)")
    buf = io.BytesIO()
    kwargs = {}
    if im.info.get("icc_profile") and fmt in ("PNG", "JPEG", "WEBP", "TIFF", "JPEG2000", "AVIF"):
        kwargs["icc_profile"] = im.info["icc_profile"]
    if fmt == "JPEG":
        kwargs["quality"] = 95
    elif fmt == "WEBP":
        kwargs["lossless"] = True
    try:
        with silenced():   # libjpeg prints its own line about images too wide for it
            im.save(buf, format=fmt, **kwargs)
    except MemoryError:
        raise CodecError(f"not enough memory to write this {fmt} image") from None
    except Exception as e:   # KeyError for an unknown format; OverflowError, struct.error, RuntimeError, OSError for
        raise CodecError(f"cannot write this image as {fmt} ({_one_line(e)})") from None   # sizes a format cannot hold
    return buf.getvalue()


def format_for(path: str | os.PathLike, default: str = "png") -> str:
    ext = Path(path).suffix.lower().lstrip(".")
    if not ext:
        return default
    known = {e.lstrip(".").lower(): f for e, f in Image.registered_extensions().items()}
    if ext not in known:
        raise CodecError(f"{path}: unknown output format '.{ext}'")
    return ext

"""The .lstm byte layout (docs/format.md is its specification).

    header   magic "LSTM", version, flags, width, height, mode, iterations, model name, model
             fingerprint, CRC32 of the header
    chunks   type (1 byte), payload length (uint32), payload, CRC32 of type+length+payload

Metadata chunks (alpha 'A', ICC profile 'C', iteration map 'M') come before the iteration chunks
('I'), so that every prefix of whole iteration chunks is itself a valid file with fewer iterations.
Version 1 files have no map; version 2 files (spatially adaptive bit rates) have exactly one;
version 3 files (large images coded in overlapping tiles) add the tile side and overlap to the header.
All integers are little-endian. Everything is validated before anything is allocated.
"""
from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field

from lstmcodec import geometry
from lstmcodec.errors import CodecError

MAGIC = b"LSTM"
VERSION = 1            # written for files without an iteration map
ADAPTIVE_VERSION = 2   # written for files with one (spatially adaptive bit rates)
TILED_VERSION = 3      # written for images coded in overlapping tiles (header: tile side, overlap)
VERSIONS = (VERSION, ADAPTIVE_VERSION, TILED_VERSION)
MODES = ("L", "RGB", "RGBA", "LA")
# cap on the pixels of an image padded to 16x16 blocks, checked before any allocation;
# set LSTMCODEC_MAX_PIXELS to change it
def _positive_env(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() and int(value) > 0 else default


MAX_PIXELS = _positive_env("LSTMCODEC_MAX_PIXELS", 1 << 28)
# The decoder's work budget, in `fast`'s pixel-iterations (pixels the networks process, times the iterations decoded,
# times the model's cost per pixel relative to fast's, plus TILE_WORK per tile and iteration): any file may ask for
# FREE_WORK (under 2 s of one thread on a quiet machine), a file of at least SMALL_FILE bytes WORK_PER_BYTE for every
# byte it holds. The cheapest real files are flat images at one iteration: a flat grey 2048x2048 image at -i 1 is 467
# bytes (9,000 pixel-iterations per byte), 4096x4096 1,611 bytes (10,400 per byte); a photograph needs about 100 per
# byte. A header that claims a large image from a few bytes would otherwise cost minutes and gigabytes. (The gap: a
# flat image of about 2300x2300 to 3300x3300 with `fast`, or over about 1150x1150 with `best`, at -i 1 makes a file
# under SMALL_FILE bytes that asks for more than FREE_WORK; LSTMCODEC_FREE_WORK admits it.)
FREE_WORK = _positive_env("LSTMCODEC_FREE_WORK", 5 << 20)       # a 2290x2290 image at one iteration with fast
SMALL_FILE = 1024
WORK_PER_BYTE = _positive_env("LSTMCODEC_WORK_PER_BYTE", 32768)
MAX_ITERATIONS = 64
ITERATION, ALPHA, ICC, MAP = b"I", b"A", b"C", b"M"
_FIXED = struct.Struct("<4sBBIIBBB")   # magic, version, flags, width, height, mode, iterations, name length
_TILES = struct.Struct("<HH")          # version 3: tile side and overlap in pixels
_CHUNK = struct.Struct("<cI")
FINGERPRINT_BYTES = 8


@dataclass
class Header:
    width: int
    height: int
    mode: str
    iterations: int            # iteration chunks the encoder wrote
    model: str
    fingerprint: bytes
    tiles: tuple[int, int] | None = None   # (tile side, overlap) in pixels when coded in tiles (version 3)


@dataclass
class LstmFile:
    header: Header
    iterations: list[bytes] = field(default_factory=list)    # payloads present (a prefix may hold fewer than declared)
    alpha: bytes | None = None
    icc: bytes | None = None
    iteration_map: bytes | None = None                       # the 'M' payload (entropy.decode_map reads it)
    header_size: int = 0
    chunk_sizes: list[int] = field(default_factory=list)     # bytes on disk of each iteration chunk, framing included


def write(header: Header, iterations: list[bytes], alpha: bytes | None = None, icc: bytes | None = None,
          iteration_map: bytes | None = None) -> bytes:
    name = header.model.encode()
    if len(name) > 255:
        raise CodecError("model name longer than 255 bytes")
    if len(header.fingerprint) != FINGERPRINT_BYTES:
        raise CodecError("model fingerprint must be 8 bytes")
    if header.tiles is not None and iteration_map is not None:
        raise CodecError("a tiled file cannot carry an iteration map")
    version = TILED_VERSION if header.tiles else VERSION if iteration_map is None else ADAPTIVE_VERSION
    head = _FIXED.pack(MAGIC, version, 0, header.width, header.height, MODES.index(header.mode),
                       len(iterations), len(name)) + name + header.fingerprint
    if header.tiles:
        head += _TILES.pack(*header.tiles)
    out = [head, struct.pack("<I", zlib.crc32(head))]
    for kind, payload in [(ALPHA, alpha), (ICC, icc), (MAP, iteration_map)] + [(ITERATION, p) for p in iterations]:
        if payload is not None:
            framed = _CHUNK.pack(kind, len(payload)) + payload
            out += [framed, struct.pack("<I", zlib.crc32(framed))]
    return b"".join(out)


TILE_WORK = 4096   # one tile's run of the decoder costs, besides its pixels, about what 4,096 more pixels cost `fast`
                   # (Python and kernel-launch overhead: 5,120 tiles of 16 x 64 at one iteration took 11 s with `best`)


def check_work(pixels: int, iterations: int, file_bytes: int, cost: float = 1.0, tiles: int = 0) -> None:
    """Refuses a decode of `iterations` iterations over `pixels` network pixels (in `tiles` tiles, 0 for none) that a
    file of `file_bytes` bytes cannot honestly ask for (FREE_WORK, WORK_PER_BYTE). The work is counted in the bundled
    `fast` model's pixel-iterations: `cost` is the model's decoder cost per pixel relative to fast's
    (nets.config.decoder_cost), and every tile adds TILE_WORK per iteration."""
    work = int((pixels * cost + tiles * TILE_WORK) * iterations)
    allowed = FREE_WORK if file_bytes < SMALL_FILE else max(FREE_WORK, WORK_PER_BYTE * file_bytes)
    if work > allowed:
        limit = (f"a file under {SMALL_FILE} bytes may ask for {FREE_WORK} pixel-iterations; LSTMCODEC_FREE_WORK "
                 "raises it" if file_bytes < SMALL_FILE else
                 f"at most {WORK_PER_BYTE} pixel-iterations per byte; LSTMCODEC_WORK_PER_BYTE raises it")
        raise CodecError(f"the file claims {pixels} pixels" + (f" in {tiles} tiles" if tiles else "") +
                         (f" of a model {cost:.1f}x as costly as fast's" if cost > 1.05 else "") +
                         f" at {iterations} iterations from only {file_bytes} bytes: "
                         f"more decoding work than a real file of its size needs ({limit})")


def read_header(data: bytes, max_pixels: int | None = None) -> tuple[Header, int, int]:
    """Parse and validate the header; returns it, its size in bytes and the format version.
    max_pixels: default MAX_PIXELS."""
    max_pixels = max_pixels or MAX_PIXELS
    if len(data) < 4 or data[:4] != MAGIC:
        raise CodecError("not an .lstm file (bad magic)" if data else "empty file")
    if len(data) < _FIXED.size:
        raise CodecError("truncated .lstm header")
    magic, version, flags, width, height, mode, iterations, name_len = _FIXED.unpack_from(data)
    if version not in VERSIONS:
        raise CodecError(f".lstm format version {version} is not supported "
                         f"(this lstmcodec reads versions {', '.join(map(str, VERSIONS))})")
    size = _FIXED.size + name_len + FINGERPRINT_BYTES
    fp_end = size
    if version == TILED_VERSION:
        size += _TILES.size
    if len(data) < size + 4:
        raise CodecError("truncated .lstm header")
    if struct.unpack_from("<I", data, size)[0] != zlib.crc32(data[:size]):
        raise CodecError("corrupt .lstm header (CRC mismatch)")
    if width < 1 or height < 1:
        raise CodecError(f"invalid image size {width}x{height}")
    if geometry.padded_pixels(width, height) > max_pixels:
        raise CodecError(f"image size {width}x{height} exceeds the limit of {max_pixels} pixels "
                         f"(counted after padding to {geometry.BLOCK}-pixel blocks)")
    if mode >= len(MODES):
        raise CodecError(f"unknown image mode {mode}")
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise CodecError(f"invalid iteration count {iterations}")
    try:
        name = data[_FIXED.size:_FIXED.size + name_len].decode()
    except UnicodeDecodeError:
        raise CodecError("corrupt model name in header") from None
    fp = bytes(data[fp_end - FINGERPRINT_BYTES:fp_end])
    tiles = None
    if version == TILED_VERSION:
        tiles = _TILES.unpack_from(data, fp_end)
        side, overlap = tiles
        if side % geometry.BLOCK or overlap % geometry.BLOCK or side < 64 or 4 * overlap > side:
            raise CodecError(f"invalid tiling in header (tile side {side}, overlap {overlap})")
    return Header(width, height, MODES[mode], iterations, name, fp, tiles), size + 4, version


def read(data: bytes, max_pixels: int | None = None) -> LstmFile:
    """Parse a whole file. A file that ends exactly after a chunk is a valid prefix; one that ends
    inside a chunk, has a bad CRC, or holds more iteration chunks than its header declares is corrupt."""
    header, pos, version = read_header(data, max_pixels)
    f = LstmFile(header, header_size=pos)
    while pos < len(data):
        if len(data) - pos < _CHUNK.size:
            raise CodecError("truncated .lstm file (inside a chunk header)")
        kind, length = _CHUNK.unpack_from(data, pos)
        end = pos + _CHUNK.size + length
        if end + 4 > len(data):
            raise CodecError("truncated .lstm file (inside a chunk)")
        if struct.unpack_from("<I", data, end)[0] != zlib.crc32(data[pos:end]):
            raise CodecError("corrupt .lstm file (chunk CRC mismatch)")
        payload = bytes(data[pos + _CHUNK.size:end])
        if kind == ITERATION:
            if len(f.iterations) == header.iterations:
                raise CodecError("more iteration chunks than the header declares")
            f.iterations.append(payload)
            f.chunk_sizes.append(end + 4 - pos)
        elif f.iterations:
            raise CodecError("metadata chunk after the iteration chunks")
        elif kind == ALPHA and f.alpha is None:
            f.alpha = payload
        elif kind == ICC and f.icc is None:
            f.icc = payload
        elif kind == MAP and f.iteration_map is None and version == ADAPTIVE_VERSION:
            f.iteration_map = payload
        else:
            raise CodecError(f"unexpected chunk type {kind!r}")
        pos = end + 4
    if not f.iterations:
        raise CodecError("the file holds no iteration data")
    if version == ADAPTIVE_VERSION and f.iteration_map is None:
        raise CodecError("the file declares an iteration map but has none")
    if header.mode in ("RGBA", "LA") and f.alpha is None:
        raise CodecError("the file declares an alpha channel but has none")
    return f


def truncate(data: bytes, iterations: int) -> bytes:
    """The file with only its first `iterations` iteration chunks, its header saying so; an iteration map is coded
    again with its counts capped at `iterations` (the same image, a smaller map), and left out where every block
    then has the same count (a version-1 file: all blocks' bits are coded alike either way)."""
    import numpy as np

    from lstmcodec.format.itermap import decode_map, encode_map

    f = read(data)
    if not 1 <= iterations <= len(f.iterations):
        raise CodecError(f"cannot keep {iterations} of {len(f.iterations)} iterations")
    hd = Header(f.header.width, f.header.height, f.header.mode, iterations, f.header.model, f.header.fingerprint,
                f.header.tiles)
    iteration_map = f.iteration_map
    if iteration_map is not None:
        counts, tile = decode_map(iteration_map, geometry.blocks(hd.height, hd.width))
        counts = np.minimum(counts, iterations)
        iteration_map = None if (counts == iterations).all() else encode_map(counts, tile)
    return write(hd, f.iterations[:iterations], f.alpha, f.icc, iteration_map)

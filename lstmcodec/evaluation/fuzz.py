"""A fuzz harness for everything lstmcodec reads from strangers: .lstm files, images and weights files.

    python -m lstmcodec.evaluation.fuzz --runs 100000 --seed 1        # the long, opt-in job (docs/robustness.md)

Every input must either work or raise CodecError, within a time limit; anything else is a finding.
- .lstm files: mutated, truncated and spliced real files and hostile headers. Half of the mutated inputs get
  their CRCs repaired after mutation, so that the damage reaches the layers behind the checksums (chunk framing,
  entropy decoding, the network). The seed files are small, real encodings made at start-up with the default model.
- images (one input in 8): every format Pillow writes, in odd modes and sizes, truncated, bit-flipped, with a
  header claiming a huge size; read and prepared as encode reads them (and encoded when small).
- tiled headers whose geometry is cheap to state and dear to decode (strips, many small tiles, the costliest model).
- around the inputs, once per run: outputs written through a FIFO, a symbolic link and a character device, and
  six threads of encodes that must leave fd 2 and the warning filters as they were.
- weights files (one input in 16): a real codec or denoiser weights file with its fields replaced by wrong
  types, out-of-range or oversized values, tensors of other shapes or types, truncated or random bytes, or a
  plain pickle; loaded as --model PATH loads them.
"""
from __future__ import annotations

import argparse
import io
import pickle
import random
import struct
import sys
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstmcodec.coding import adaptive
from lstmcodec import api
from lstmcodec.format import container
from lstmcodec.models import zoo
from lstmcodec.errors import CodecError
from lstmcodec.io.imageio import open_image, prepare

SPECIAL = [0, 1, 0x7F, 0x80, 0xFE, 0xFF]


def seed_files() -> list[bytes]:
    """Small real files: RGB, grayscale, RGBA with alpha, an odd size, several iteration counts, an
    adaptive one, a tiled one."""
    from PIL import Image

    g = np.random.default_rng(0)
    base = (np.add.outer(np.arange(40), np.arange(56)) * 3 % 256).astype(np.uint8)
    rgb = np.stack([base, base[::-1], 255 - base], axis=2)
    rgba = Image.fromarray(rgb).convert("RGBA")
    rgba.putalpha(Image.fromarray(g.integers(0, 256, (40, 56), dtype=np.uint8)))
    codec = zoo.load_codec()
    return [
        codec.compress(rgb, iterations=4),
        codec.compress(Image.fromarray(base), iterations=2),
        codec.compress(rgba, iterations=3),
        codec.compress(rgb[:17, :9], iterations=1),
        adaptive.encode_adaptive(codec, prepare(Image.fromarray(rgb)), 0.7, max_iterations=4, tile=16, tries=1)[0].data,
        codec.compress(np.tile(rgb, (2, 2, 1))[:72, :72], 2, tiles=64),
    ]


def repair_crcs(data: bytes) -> bytes:
    """Recompute the header CRC and every chunk CRC that can be located (a best effort on damaged files)."""
    b = bytearray(data)
    if len(b) < container._FIXED.size:
        return bytes(b)
    name_len = b[container._FIXED.size - 1]
    size = container._FIXED.size + name_len + container.FINGERPRINT_BYTES
    if b[4] == container.TILED_VERSION:
        size += container._TILES.size
    if len(b) < size + 4:
        return bytes(b)
    struct.pack_into("<I", b, size, zlib.crc32(b[:size]))
    pos = size + 4
    while pos + container._CHUNK.size <= len(b):
        _, length = container._CHUNK.unpack_from(b, pos)
        end = pos + container._CHUNK.size + length
        if end + 4 > len(b):
            break
        struct.pack_into("<I", b, end, zlib.crc32(b[pos:end]))
        pos = end + 4
    return bytes(b)


def mutate(rng: random.Random, seeds: list[bytes]) -> tuple[str, bytes]:
    """One fuzz input and the name of the strategy that made it."""
    data = bytearray(rng.choice(seeds))
    kind = rng.choice(["flip", "byte", "truncate", "insert", "delete", "splice", "header", "chunk-length", "tiles"])
    if kind == "tiles":
        return kind, crafted_tiles(rng, bytes(data))
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif kind == "byte":
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.choice(SPECIAL + [rng.randrange(256)])
    elif kind == "truncate":
        data = data[:rng.randrange(len(data))]
    elif kind == "insert":
        i = rng.randrange(len(data) + 1)
        data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif kind == "delete":
        i = rng.randrange(len(data))
        del data[i:i + rng.randint(1, 64)]
    elif kind == "splice":
        other = rng.choice(seeds)
        data = data[:rng.randrange(len(data))] + other[rng.randrange(len(other)):]
    elif kind == "header":  # a well-formed header with hostile fields, then the original chunks
        f = container.read(bytes(data))
        version = rng.choice(container.VERSIONS)
        head = container._FIXED.pack(container.MAGIC, version, rng.choice([0, rng.randrange(256)]),
                                     rng.choice([0, 1, 17, 65535, 1 << 14, 1 << 31, rng.randrange(1 << 32)]),
                                     rng.choice([0, 1, 9, 65535, 1 << 14, 1 << 31, rng.randrange(1 << 32)]),
                                     rng.randrange(6), rng.randrange(256), len(f.header.model)) \
            + f.header.model.encode() + f.header.fingerprint
        if version == container.TILED_VERSION:
            head += container._TILES.pack(*(rng.choice([0, 16, 32, 48, 64, 1024, 65535, rng.randrange(1 << 16)])
                                            for _ in range(2)))
        data = bytearray(head + struct.pack("<I", zlib.crc32(head)) + bytes(data[f.header_size:]))
    else:  # chunk-length: a chunk claims another length
        hd, pos, _ = container.read_header(bytes(data))
        struct.pack_into("<I", data, pos + 1, rng.choice([0, 1, 2, 5, 1 << 20, (1 << 32) - 1, rng.randrange(4096)]))
    if kind != "header" and rng.random() < 0.5:
        kind += "+crc"
        data = bytearray(repair_crcs(bytes(data)))
    return kind, bytes(data)


def crafted_tiles(rng: random.Random, data: bytes) -> bytes:
    """A tiled (version 3) header whose geometry is cheap to state and dear to decode: long strips or many small
    tiles, naming the costliest bundled model, before a real file's chunks."""
    f = container.read(data)
    names = zoo.names("codec")
    codec = zoo.load_codec(rng.choice(names))
    w, h = rng.choice([(245_760, 16), (16, 245_760), (2_048, 2_048), (65_535, 64), (4_096, 1_024)])
    head = container._FIXED.pack(container.MAGIC, container.TILED_VERSION, 0, w, h, container.MODES.index(f.header.mode),
                                 rng.randint(1, 4), len(codec.name)) + codec.name.encode() + codec.fingerprint
    head += container._TILES.pack(rng.choice([64, 80, 128]), rng.choice([0, 16]))
    return head + struct.pack("<I", zlib.crc32(head)) + data[f.header_size:]


# ----------------------------------------------------------------------------- images and weights files

IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "ICO", "TGA", "PCX", "DDS", "SGI",
                 "JPEG2000", "EPS", "XBM", "QOI")
MODES = ("RGB", "RGBA", "L", "LA", "P", "1", "I", "I;16", "F", "CMYK", "YCbCr")


def image_seeds(rng: random.Random) -> list[bytes]:
    """Small real image files of many formats and modes (whatever this Pillow can write)."""
    from PIL import Image

    base = np.add.outer(np.arange(24), np.arange(40)).astype(np.uint8) * 5
    out = []
    for fmt in IMAGE_FORMATS:
        for mode in MODES:
            try:
                im = Image.fromarray(np.stack([base, base[::-1], 255 - base], 2)).convert(mode)
                buf = io.BytesIO()
                im.save(buf, format=fmt)
                out.append(buf.getvalue())
            except Exception:  # this format does not take this mode (or is not built in)
                continue
    dark = Image.fromarray((base.astype(np.uint16) % 201))      # a dark 16-bit grey photo: 0..200 of 65535
    unit = Image.fromarray(base.astype(np.float32) / 255)       # floats in 0..1, and out of any range
    odd = Image.fromarray(base.astype(np.float32) * 1000 - 7)
    key = Image.fromarray(np.stack([base, base, base], 2))
    frames = [Image.fromarray(base + k) for k in range(3)]
    for im, fmt, options in [(dark, "PNG", {}), (unit, "TIFF", {}), (odd, "TIFF", {}),
                             (key, "PNG", {"transparency": (0, 0, 0)}), (frames[0], "GIF", {"save_all": True,
                                                                                          "append_images": frames[1:]})]:
        buf = io.BytesIO()
        im.save(buf, format=fmt, **options)
        out.append(buf.getvalue())
    return out


def bomb(rng: random.Random) -> bytes:
    """A PNG whose header claims a huge size (the image data is missing)."""
    w, h = rng.choice([(100_000, 100_000), (1 << 16, 1), (1, 1 << 31 - 1), (65535, 65535)])
    head = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + head
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(head)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def mutate_image(rng: random.Random, seeds: list[bytes]) -> tuple[str, bytes]:
    data = bytearray(rng.choice(seeds))
    kind = rng.choice(["image", "image-flip", "image-truncate", "image-bytes", "image-bomb"])
    if kind == "image-flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif kind == "image-truncate":
        data = data[:rng.randrange(1, len(data))]
    elif kind == "image-bytes":
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(min(len(data), 64))] = rng.choice(SPECIAL + [rng.randrange(256)])
    elif kind == "image-bomb":
        data = bytearray(bomb(rng))
    return kind, bytes(data)


def try_image(data: bytes) -> None:
    """What encode does with an input image: read, prepare, and (when small) code it."""
    src = prepare(open_image(data, name="input"))
    h, w = src.rgb.shape[:2]
    if h * w <= 64 * 64:
        zoo.load_codec().encode_source(src, 1)


def weights_seed() -> dict:
    """The default codec's weights file as a dict (what torch.load gives)."""
    import torch

    path, _ = zoo.resolve("codec", "default")
    return torch.load(path, map_location="cpu", weights_only=True)


HOSTILE_VALUES = [None, 0, -5, 1, 10 ** 9, 2 ** 63, 1e6, -1.5, float("nan"), "x", "", [], [2 ** 20] * 4, {}, True,
                  [1, 2, 3], "lstm" * 100]


def mutate_weights(rng: random.Random, blob: dict) -> tuple[str, bytes]:
    """A weights file with one hostile change, serialised as torch.save would write it."""
    import copy

    import torch

    kind = rng.choice(["weights-config", "weights-field", "weights-tensor", "weights-truncate", "weights-pickle",
                       "weights-bytes"])
    b = copy.copy(blob)
    buf = io.BytesIO()
    if kind == "weights-config":
        b["config"] = dict(b["config"], **{rng.choice(list(b["config"]) + ["bits", "width"]): rng.choice(HOSTILE_VALUES)})
    elif kind == "weights-field":
        b[rng.choice(["name", "config", "format", "state_dict", "meta", "task", "entropy_prior",
                      "entropy_mixer"])] = rng.choice(HOSTILE_VALUES)
    elif kind == "weights-tensor":
        sd = dict(b["state_dict"])
        key = rng.choice(sorted(sd))
        sd[key] = rng.choice([sd[key][:1], sd[key].float().double(), torch.zeros(3), sd[key].flatten(), torch.zeros(0)])
        b["state_dict"] = sd
    elif kind == "weights-pickle":
        pickle.dump({"format": "lstmcodec-weights/1", "obj": Path(".")}, buf)
        return kind, buf.getvalue()
    torch.save(b, buf)
    data = buf.getvalue()
    if kind == "weights-truncate":
        data = data[:rng.randrange(len(data))]
    elif kind == "weights-bytes":
        data = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = bytes(data)
    return kind, data


def try_weights(data: bytes, folder: Path) -> None:
    path = folder / "w.pt"
    path.write_bytes(data)
    zoo.load_codec(str(path)).compress(np.zeros((16, 16, 3), np.uint8), 1)
    zoo.clear_cache()


def environment_findings(folder: Path) -> list[str]:
    """What files.atomic_write and the library promise around an input rather than in it: a FIFO, a symbolic link
    and (as root) a character device written through, and six threads of encodes leaving fd 2 and the warning
    filters as they were. Each broken promise is a finding."""
    import os
    import stat
    import threading
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    from lstmcodec.io.files import atomic_write

    found = []
    fifo, got = folder / "fifo.lstm", []
    os.mkfifo(fifo)
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    atomic_write(fifo, b"through the fifo")
    reader.join(10)
    if got != [b"through the fifo"] or not stat.S_ISFIFO(os.stat(fifo).st_mode):
        found.append("output: a FIFO was not written through")
    (folder / "target").write_bytes(b"old")
    (folder / "link").symlink_to(folder / "target")
    atomic_write(folder / "link", b"new")
    if not (folder / "link").is_symlink() or (folder / "target").read_bytes() != b"new":
        found.append("output: a symbolic link was not written through")
    try:
        os.mknod(folder / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        atomic_write(folder / "null", b"discarded")
        if not stat.S_ISCHR(os.stat(folder / "null").st_mode):
            found.append("output: a character device was replaced by a file")
    except PermissionError:   # device nodes need root
        pass
    small = np.zeros((24, 24, 3), np.uint8)
    api.encode(small, iterations=1)
    fd, filters = os.fstat(2), list(warnings.filters)
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _: [api.encode(small, iterations=1) for _ in range(5)], range(6)))
    if (os.fstat(2).st_ino, os.fstat(2).st_dev) != (fd.st_ino, fd.st_dev) or list(warnings.filters) != filters:
        found.append("threads: encoding from threads changed fd 2 or the warning filters")
    return found


@dataclass
class Report:
    runs: int = 0
    decoded: int = 0
    refused: int = 0
    slowest_s: float = 0.0
    by_kind: Counter = field(default_factory=Counter)
    findings: list[str] = field(default_factory=list)


def run(runs: int, seed: int = 0, time_limit_s: float = 5.0, seeds: list[bytes] | None = None,
        progress: bool = False, corpus: bool = True) -> Report:
    """Try `runs` hostile inputs (with corpus, one in 8 an image and one in 16 a weights file, the rest .lstm
    files). The decoder runs with its real limits: the pixel cap and the work budget (container.check_work)
    are what keep a header that claims a large image from costing more than the time limit."""
    rng = random.Random(seed)
    seeds = seeds or seed_files()
    images = image_seeds(rng) if corpus else []
    blob = weights_seed() if corpus else None
    rep = Report()
    reported = 0
    with tempfile.TemporaryDirectory() as tmp:
        if corpus:
            rep.findings += environment_findings(Path(tmp))
        for k in range(runs):
            draw = rng.random()
            if corpus and draw < 1 / 16:
                kind, data = mutate_weights(rng, blob)
                attempt = lambda d=data: try_weights(d, Path(tmp))  # noqa: E731
            elif corpus and draw < 3 / 16:
                kind, data = mutate_image(rng, images)
                attempt = lambda d=data: try_image(d)  # noqa: E731
            else:
                kind, data = mutate(rng, seeds)
                attempt = lambda d=data: api.decode(d)  # noqa: E731
            rep.by_kind[kind] += 1
            t0 = time.perf_counter()
            try:
                attempt()
                rep.decoded += 1
            except CodecError:
                rep.refused += 1
            except Exception as e:  # anything but CodecError is a finding
                rep.findings.append(f"input {k} ({kind}): {type(e).__name__}: {e}"[:300])
            dt = time.perf_counter() - t0
            rep.slowest_s = max(rep.slowest_s, dt)
            if dt > time_limit_s:
                rep.findings.append(f"input {k} ({kind}, {len(data)} bytes): took {dt:.2f} s")
            rep.runs += 1
            if progress and len(rep.findings) > reported:  # each finding as it happens, not only at the end
                for f in rep.findings[reported:]:
                    print("FINDING", f, file=sys.stderr, flush=True)
                reported = len(rep.findings)
            if progress and (k + 1) % 1000 == 0:
                print(f"{k + 1} inputs: {rep.decoded} decoded, {rep.refused} refused, {len(rep.findings)} findings, "
                      f"slowest {rep.slowest_s:.3f} s", file=sys.stderr, flush=True)
    return rep


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-limit", type=float, default=5.0, help="seconds one input may take")
    p.add_argument("--no-corpus", action="store_true", help=".lstm files only (no images, no weights files)")
    args = p.parse_args(argv)
    rep = run(args.runs, args.seed, args.time_limit, progress=True, corpus=not args.no_corpus)
    print(f"{rep.runs} inputs (seed {args.seed}): {rep.decoded} decoded, {rep.refused} refused with CodecError, "
          f"{len(rep.findings)} findings; slowest input {rep.slowest_s:.3f} s")
    for kind, n in sorted(rep.by_kind.items()):
        print(f"  {kind:18s} {n}")
    for f in rep.findings[:50]:
        print("FINDING", f)
    return 1 if rep.findings else 0


if __name__ == "__main__":
    raise SystemExit(main())

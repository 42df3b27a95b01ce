"""A fuzz harness for the .lstm reader: mutated, truncated and spliced real files and random headers.

    python -m lstmcodec.fuzz --runs 100000 --seed 1        # the long, opt-in job (docs/robustness.md)

Every input must either decode or raise CodecError, within a time limit; anything else is a finding.
Half of the mutated inputs get their CRCs repaired after mutation, so that the damage reaches the
layers behind the checksums (chunk framing, entropy decoding, the network) instead of stopping at the
first CRC check. The seed files are small, real encodings made at start-up with the bundled model.
"""
from __future__ import annotations

import argparse
import random
import struct
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from . import codec, container
from .errors import CodecError
from .imageio import prepare

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
    return [
        codec.encode(rgb, iterations=4),
        codec.encode(Image.fromarray(base), iterations=2),
        codec.encode(rgba, iterations=3),
        codec.encode(rgb[:17, :9], iterations=1),
        codec.encode_adaptive(prepare(Image.fromarray(rgb)), 0.7, max_iterations=4, tile=16, tries=1)[0].data,
        codec.encode_image(prepare(Image.fromarray(np.tile(rgb, (2, 2, 1))[:72, :72])), 2, tiles=64).data,
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
    kind = rng.choice(["flip", "byte", "truncate", "insert", "delete", "splice", "header", "chunk-length"])
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


@dataclass
class Report:
    runs: int = 0
    decoded: int = 0
    refused: int = 0
    slowest_s: float = 0.0
    by_kind: Counter = field(default_factory=Counter)
    findings: list[str] = field(default_factory=list)


def run(runs: int, seed: int = 0, time_limit_s: float = 2.0, seeds: list[bytes] | None = None,
        progress: bool = False, max_pixels: int = 1 << 16) -> Report:
    """Decode `runs` fuzz inputs. A header may claim any size up to the pixel cap, and decoding a claimed
    image costs time in proportion to its size, however few bytes the file has (an all-zero plane codes to
    almost nothing, as in any entropy coder). The cap is therefore lowered for the run (as
    LSTMCODEC_MAX_PIXELS would) to 2^16 pixels, where a full decode stays under the time limit."""
    rng = random.Random(seed)
    seeds = seeds or seed_files()
    saved, container.MAX_PIXELS = container.MAX_PIXELS, max_pixels
    try:
        return _run(rng, runs, seeds, time_limit_s, progress)
    finally:
        container.MAX_PIXELS = saved


def _run(rng: random.Random, runs: int, seeds: list[bytes], time_limit_s: float, progress: bool) -> Report:
    rep = Report()
    for k in range(runs):
        kind, data = mutate(rng, seeds)
        rep.by_kind[kind] += 1
        t0 = time.perf_counter()
        try:
            codec.decode(data)
            rep.decoded += 1
        except CodecError:
            rep.refused += 1
        except Exception as e:  # anything but CodecError is a finding
            rep.findings.append(f"input {k} ({kind}): {type(e).__name__}: {e}"[:300])
        dt = time.perf_counter() - t0
        rep.slowest_s = max(rep.slowest_s, dt)
        if dt > time_limit_s:
            rep.findings.append(f"input {k} ({kind}): took {dt:.2f} s")
        rep.runs += 1
        if progress and (k + 1) % 1000 == 0:
            print(f"{k + 1} inputs: {rep.decoded} decoded, {rep.refused} refused, {len(rep.findings)} findings, "
                  f"slowest {rep.slowest_s:.3f} s", file=sys.stderr, flush=True)
    return rep


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-limit", type=float, default=2.0, help="seconds one input may take")
    p.add_argument("--max-pixels", type=int, default=1 << 16, help="the decoder's pixel cap during the run")
    args = p.parse_args(argv)
    rep = run(args.runs, args.seed, args.time_limit, progress=True, max_pixels=args.max_pixels)
    print(f"{rep.runs} inputs (seed {args.seed}): {rep.decoded} decoded, {rep.refused} refused with CodecError, "
          f"{len(rep.findings)} findings; slowest input {rep.slowest_s:.3f} s")
    for kind, n in sorted(rep.by_kind.items()):
        print(f"  {kind:18s} {n}")
    for f in rep.findings[:50]:
        print("FINDING", f)
    return 1 if rep.findings else 0


if __name__ == "__main__":
    raise SystemExit(main())

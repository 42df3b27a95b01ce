#!/usr/bin/env python3
"""Write the golden files of tests/data/golden/: for each bundled codec, the .lstm file of a test photo and its
decoded image, which tests/test_golden.py compares every later encode and decode with.

    python scripts/make_golden.py          # only when a bundled model changes on purpose

A refactor that changes no arithmetic leaves the files byte-identical (the decoded images within 1 level, which
allows for the float rounding of another CPU).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from lstmcodec.models import zoo
from lstmcodec.io.files import atomic_write
from lstmcodec.io.imageio import encode_image_bytes

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden"
# (case name, source photo, iterations, tile side or "auto"): every bundled codec codes the first case, the default
# also the others (the tiled path; its linear tail, in a file with a count per block)
CASES = [("parrots-i6", "parrots.png", 6, "auto"), ("houses-tiled-i3", "houses.png", 3, 96),
         ("parrots-i16", "parrots.png", 16, "auto")]


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name in zoo.names("codec"):
        codec = zoo.load_codec(name, precision="fp32")
        for case, photo, iterations, tiles in CASES if name == zoo.DEFAULT_CODEC else CASES[:1]:
            data = codec.compress(ROOT / "tests" / "data" / photo, iterations, tiles)
            atomic_write(GOLDEN / f"{name}-{case}.lstm", data)
            atomic_write(GOLDEN / f"{name}-{case}.png", encode_image_bytes(codec.decompress(data), "png"))
            print(f"{name} {case}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

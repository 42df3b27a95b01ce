#!/usr/bin/env python3
"""Prepare what travels with the repository to a training machine: the training images and the wheels of the two
dependencies a typical GPU image lacks (constriction, pytorch-msssim), in a git-ignored folder, then measure the
bundle against its 64 MiB limit (docs/training.md).

    python scripts/prepare_bundle.py --data ../shared/data/bsds432 --out bundle --eval ../shared/data/kodak

--eval copies the first --eval-images photographs of a folder (4 Kodak images: 2.4 MB) to OUT/eval, for the job's
images per second (accelerator_job.py --throughput); never trained on.

The wheels are for CPython 3.12 on manylinux x86-64 (the accelerator image's Python), at the versions installed
here; pip fetches them once from the package index, here, so that the training machine needs no network.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from lstmcodec.io.files import IMAGE_SUFFIXES

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ("constriction", "pytorch-msssim")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")


def _images(folder: str) -> list[Path]:
    images = [f for f in sorted(Path(folder).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        sys.exit(f"error: no images in {folder}")
    return images


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the training images (a folder)")
    p.add_argument("--out", default="bundle", help="the bundle folder inside the checkout (git-ignored)")
    p.add_argument("--python-version", default="3.12")
    p.add_argument("--eval", metavar="DIR", help="also copy photographs for the job's --throughput to OUT/eval")
    p.add_argument("--eval-images", type=int, default=4, help="how many of --eval's (by name)")
    args = p.parse_args(argv)
    out = Path(args.out)
    data, wheels = out / "data", out / "wheels"
    images = _images(args.data)   # both checked before anything is removed or copied
    evals = _images(args.eval)[:args.eval_images] if args.eval else []
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    for f in images:
        shutil.copy2(f, data / f.name)
    bundled = [data]
    if args.eval:
        ev = out / "eval"
        shutil.rmtree(ev, ignore_errors=True)
        ev.mkdir()
        for f in evals:
            shutil.copy2(f, ev / f.name)
        bundled.append(ev)
    wheels.mkdir(exist_ok=True)
    platforms = [a for plat in PLATFORMS for a in ("--platform", plat)]
    for name in WHEELS:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", args.python_version, "--implementation", "cp", *platforms,
                        "-d", str(wheels), f"{name}=={version(name)}"], check=True)
    print(f"{len(images)} images in {data}, wheels: {', '.join(w.name for w in sorted(wheels.glob('*.whl')))}")
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "sizes.py"), "--bundle", *map(str, bundled), str(wheels)]).returncode


if __name__ == "__main__":
    raise SystemExit(main())

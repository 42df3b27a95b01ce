"""The size limits of the project, measured: what git tracks, each weights file, the model zoo, the wheel, and the
bundle that travels to a training machine, in a checkout:

    python scripts/sizes.py [--wheel] [--bundle DATA [EVAL] WHEELS]

    tracked files   <= 30 MiB  (a clone plus the 32 MB training set must fit a 64 MiB bundle)
    a weights file  <= 16 MiB
    codec models    <= 3 in weights/index.json
    the wheel       <= 40 MB
    the bundle      <= 64 MiB  (tracked files, the training data, the wheels the job installs)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
LIMITS = {"tracked": 30 * MiB, "weights_file": 16 * MiB, "codec_models": 3, "wheel": 40_000_000, "bundle": 64 * MiB}


def tracked_files(root: Path = ROOT) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    return [root / p for p in out.decode().split("\0") if p and (root / p).is_file()]


def tree_bytes(paths) -> int:
    total = 0
    for p in paths:
        p = Path(p)
        total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
    return total


def weights_files(root: Path = ROOT) -> dict[str, int]:
    return {f.name: f.stat().st_size for f in sorted((root / "weights").glob("*.pt"))}


def codec_models(root: Path = ROOT) -> list[str]:
    return sorted(json.loads((root / "weights" / "index.json").read_text()).get("codec", {}))


def wheel_bytes(root: Path = ROOT) -> int:
    """Build the wheel (pip wheel, no dependencies) in a temporary folder and return its size."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp, str(root)], check=True,
                       stdout=subprocess.DEVNULL)
        return sum(f.stat().st_size for f in Path(tmp).glob("*.whl"))


def report(wheel: bool = False, bundle: tuple[str, ...] | None = None, root: Path = ROOT) -> tuple[list[str], bool]:
    """Lines of the measured sizes against their limits, and whether all are within them."""
    lines, ok = [], True

    def check(what: str, value: int, limit: int, unit: str = "MiB") -> None:
        nonlocal ok
        show = (lambda v: f"{v / MiB:.2f} MiB") if unit == "MiB" else (lambda v: f"{v / 1e6:.2f} MB") if unit == "MB" \
            else str
        good = value <= limit
        ok &= good
        lines.append(f"{'ok ' if good else 'OVER'} {what}: {show(value)} (limit {show(limit)})")

    tracked = tree_bytes(tracked_files(root))
    check("tracked files", tracked, LIMITS["tracked"])
    for name, size in weights_files(root).items():
        check(f"weights/{name}", size, LIMITS["weights_file"])
    check(f"codec models ({', '.join(codec_models(root))})", len(codec_models(root)), LIMITS["codec_models"], "count")
    if wheel:
        check("wheel", wheel_bytes(root), LIMITS["wheel"], "MB")
    if bundle:
        check(f"bundle (tracked files + {' + '.join(bundle)})", tracked + tree_bytes(bundle), LIMITS["bundle"])
    return lines, ok


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wheel", action="store_true", help="also build the wheel and measure it")
    p.add_argument("--bundle", nargs="+", metavar="FOLDER",
                   help="also the training bundle with these folders (its data, eval photographs and wheels)")
    args = p.parse_args(argv)
    lines, ok = report(args.wheel, tuple(args.bundle) if args.bundle else None)
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

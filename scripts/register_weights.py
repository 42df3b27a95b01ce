#!/usr/bin/env python3
"""Record a weights file in weights/index.json (name -> file, SHA-256), making it a bundled model.

    python scripts/register_weights.py weights/lstm-w25.pt      (the section, codec / denoise / classify, is the file's task)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", type=Path)
    args = p.parse_args()
    blob = torch.load(args.file, map_location="cpu", weights_only=True)
    name, kind = blob["name"], blob.get("task", "codec")
    if args.file.resolve().parent != (ROOT / "weights").resolve():
        sys.exit("error: bundled weights live in weights/")
    index_path = ROOT / "weights" / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index.setdefault(kind, {})[name] = {
        "file": args.file.name,
        "sha256": hashlib.sha256(args.file.read_bytes()).hexdigest(),
        "config": blob.get("config", {}),
        **({"arch": blob["arch"]} if "arch" in blob else {}),
    }
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    print(f"registered {kind} model '{name}' -> weights/{args.file.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

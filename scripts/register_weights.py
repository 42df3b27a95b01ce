#!/usr/bin/env python3
"""Record a weights file in weights/index.json (name -> file, SHA-256), making it a bundled model.

    python scripts/register_weights.py weights/fast.pt          (the section, codec / denoise / classify, is the file's task)

An entry of the same name is replaced only with --force; every file is checked as lstmcodec will load it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch

from lstmcodec.models import weights, zoo
from lstmcodec.coding.codec import Codec
from lstmcodec.errors import CodecError

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", type=Path)
    p.add_argument("--force", action="store_true", help="replace an entry of the same name")
    p.add_argument("--bf16-cost", type=float, metavar="PERCENT",
                   help="a codec's measured cost of bf16 inference: the Kodak MS-SSIM BD-rate of `lstmcodec bench "
                        "--precision bf16` against `--precision fp32`; --precision auto uses bf16 only for a model "
                        f"whose cost is at most {zoo.BF16_LIMIT} %%")
    args = p.parse_args(argv)
    if args.file.resolve().parent != (ROOT / "weights").resolve():
        sys.exit("error: bundled weights live in weights/")
    blob = torch.load(args.file, map_location="cpu", weights_only=True)
    kind = blob.get("task", "codec") if isinstance(blob, dict) else "codec"
    extra = {}
    try:  # the checks lstmcodec applies when it loads the file
        blob = weights.read(args.file, kind)
        if kind == "codec":
            codec = Codec.from_weights(args.file, blob)
            extra["fingerprint"] = codec.fingerprint.hex()
            if codec.tail is not None:   # the same weights without their linear tail: earlier files record it
                extra["network_fingerprint"] = codec.network_fingerprint.hex()
        else:
            zoo.load_net(kind, str(args.file))
    except (ValueError, CodecError) as e:
        sys.exit(f"error: {e}")
    name = blob["name"]
    index_path = ROOT / "weights" / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    if name in index.get(kind, {}) and not args.force:
        sys.exit(f"error: weights/index.json already has a {kind} model '{name}' (pass --force to replace it)")
    retired = zoo.retired().get(kind, {})
    current = index.get(kind, {}).get(name)
    if current is None and name in retired:
        sys.exit(f"error: '{name}' is the name of a retired model; files made with it name it")
    if current is not None and current.get("fingerprint") \
            and current["fingerprint"] not in (extra.get("fingerprint"), extra.get("network_fingerprint")) \
            and current["fingerprint"] not in retired.get(name, {}).get("fingerprints", []):
        # replacing a shipped model's weights under its name: files made with the old ones must still be explained
        sys.exit(f"error: the weights '{name}' ships now ({current['fingerprint']}) are not in weights/retired.json; "
                 "list that fingerprint there under this name, with the last version that ships it, first")
    index.setdefault(kind, {})[name] = {
        "file": args.file.name,
        "sha256": hashlib.sha256(args.file.read_bytes()).hexdigest(),
        "config": blob.get("config", {}),
        **({"arch": blob["arch"]} if "arch" in blob else {}),
        **({"bf16_cost": args.bf16_cost} if args.bf16_cost is not None and kind == "codec" else {}),
        **extra,
    }
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    print(f"registered {kind} model '{name}' -> weights/{args.file.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

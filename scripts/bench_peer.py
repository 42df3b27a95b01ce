#!/usr/bin/env python3
"""Speed against the peer the performance issue names, CompressAI's bmshj2018-hyperprior (quality 4),
timed in one process on the same image, threads and torch as lstmcodec.

    pip install compressai            # beside lstmcodec
    python scripts/bench_peer.py ../shared/data/kodak/kodim23.png --iterations 8 --runs 5 --threads 2

lstmcodec's times are whole API calls (network, entropy coding, container); CompressAI's are
model.compress / model.decompress (network and entropy coding). CompressAI fetches its trained weights
on first use; where it cannot (no network), --untrained runs its network with initial weights: the same
convolutions and so the same network time, but its entropy coder then codes untrained latents, so
its times are then a lower bound on the trained model's.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lstmcodec import codec  # noqa: E402
from lstmcodec.imageio import open_image, prepare  # noqa: E402
from lstmcodec.weights import DEFAULT_CODEC  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image")
    p.add_argument("--iterations", type=int, default=8)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", default=DEFAULT_CODEC)
    p.add_argument("--untrained", action="store_true", help="CompressAI with initial weights (no download)")
    args = p.parse_args()
    try:
        from compressai.zoo import bmshj2018_hyperprior
    except ImportError as e:
        sys.exit(f"error: CompressAI is not importable ({e}); pip install compressai")
    torch.set_num_threads(args.threads)
    src = prepare(open_image(args.image))
    h, w = src.rgb.shape[:2]
    peer = bmshj2018_hyperprior(quality=4, pretrained=not args.untrained).eval()
    peer.update(force=True)
    x = torch.from_numpy(src.rgb.copy()).permute(2, 0, 1)[None].float() / 255
    if h % 64 or w % 64:
        sys.exit("error: CompressAI's hyperprior needs sides that are multiples of 64 (Kodak's 768x512 are)")

    def ours():
        t0 = time.perf_counter()
        data = codec.encode_image(src, args.iterations, args.model).data
        t1 = time.perf_counter()
        codec.decode(data)
        return t1 - t0, time.perf_counter() - t1, len(data)

    def theirs():
        with torch.inference_mode():
            t0 = time.perf_counter()
            out = peer.compress(x)
            t1 = time.perf_counter()
            peer.decompress(out["strings"], out["shape"])
            return t1 - t0, time.perf_counter() - t1, sum(len(s[0]) for s in out["strings"])

    ours(), theirs()  # warm-up: weights loaded, kernels chosen
    runs = {"lstmcodec": [], "hyperprior": []}
    for _ in range(args.runs):  # interleaved, so that a slow moment of the machine hits both
        runs["lstmcodec"].append(ours())
        runs["hyperprior"].append(theirs())
    med = {k: [statistics.median(r[i] for r in v) for i in range(3)] for k, v in runs.items()}
    print(f"{args.image}: {w}x{h}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.runs} runs, medians")
    print(f"lstmcodec {args.model} -i {args.iterations}: encode {med['lstmcodec'][0]:.3f} s, decode "
          f"{med['lstmcodec'][1]:.3f} s, {8 * med['lstmcodec'][2] / (w * h):.3f} bpp")
    print(f"bmshj2018-hyperprior q4{' (untrained)' if args.untrained else ''}: encode {med['hyperprior'][0]:.3f} s, "
          f"decode {med['hyperprior'][1]:.3f} s, {8 * med['hyperprior'][2] / (w * h):.3f} bpp")
    print(f"ratio lstmcodec / hyperprior: encode {med['lstmcodec'][0] / med['hyperprior'][0]:.2f}x, "
          f"decode {med['lstmcodec'][1] / med['hyperprior'][1]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

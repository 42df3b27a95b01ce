#!/usr/bin/env python3
"""Encode and decode speed of a codec model: median wall time of several in-process runs.

    python scripts/bench_speed.py ../shared/data/kodak/kodim23.png --iterations 8 --runs 5

Reports the model's load time once, then per run the encode time (recurrence + entropy coding +
container) and decode time (parsing + entropy decoding + decoder), the file size, the networks'
multiply-accumulates per pixel and the GFLOP/s the times achieve, and peak memory.
With --entropy it also times the entropy coder alone: coding and decoding all the bit planes of the
largest iteration count (the network's time left out).
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lstmcodec import codec, container, entropy  # noqa: E402
from lstmcodec.imageio import open_image, prepare  # noqa: E402
from lstmcodec.weights import DEFAULT_CODEC  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image")
    p.add_argument("--iterations", type=int, nargs="+", default=[8])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--model", default=DEFAULT_CODEC)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--entropy", action="store_true", help="also time entropy coding and decoding alone")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    m = codec.get_model(args.model, args.device)
    load_s = time.perf_counter() - t0
    src = prepare(open_image(args.image))
    h, w = src.rgb.shape[:2]
    print(f"{args.image}: {w}x{h}, model {m.name}, {torch.get_num_threads()} threads, device {args.device}, "
          f"model load {load_s:.2f} s")
    codec.decode(codec.encode_image(src, 1, args.model, args.device).data, device=args.device)  # warm-up
    for it in args.iterations:
        enc, dec = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            data = codec.encode_image(src, it, args.model, args.device).data
            enc.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            codec.decode(data, device=args.device)
            dec.append(time.perf_counter() - t0)
        print(f"-i {it:2d}: encode median {statistics.median(enc):.2f} s (min {min(enc):.2f}), "
              f"decode median {statistics.median(dec):.2f} s (min {min(dec):.2f}), "
              f"{len(data)} bytes = {8 * len(data) / (w * h):.3f} bpp")
        work(m, src, it, statistics.median(enc), statistics.median(dec))
    if args.entropy:
        entropy_speed(data, m, args.runs)
    print(f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


def work(m, src, iterations: int, enc_s: float, dec_s: float) -> None:
    """Multiply-accumulates of the networks (torch's FLOP counter: convolutions and matrix products),
    per pixel and per iteration, and the rate the measured times achieve. The cells add their 1x1
    hidden-state products in place (addmm_), which the counter does not know: it is told here."""
    from torch.utils.flop_counter import FlopCounterMode

    def addmm_flop(_c_shape, a_shape, b_shape, **_kwargs) -> int:  # c += a @ b
        return 2 * a_shape[0] * a_shape[1] * b_shape[1]

    counted = {torch.ops.aten.addmm_: addmm_flop}

    h, w = src.rgb.shape[:2]
    dev = next(m.model.parameters()).device
    with torch.inference_mode():
        x = codec._to_tensor(src.rgb, dev)
        with FlopCounterMode(display=False, custom_mapping=counted) as total:
            for _ in m.model.iterate(x, iterations, final_reconstruction=False):  # as encode runs it
                pass
        with FlopCounterMode(display=False, custom_mapping=counted) as decoder:
            for _ in m.model.reconstruct(torch.ones(1, m.model.config.bits, x.shape[2] // 16, x.shape[3] // 16, device=dev)
                                         for _ in range(iterations)):
                pass
    enc_f, dec_f = total.get_total_flops(), decoder.get_total_flops()
    print(f"       networks: encode {enc_f / 2 / (w * h * iterations):.0f} MAC per pixel per iteration "
          f"({enc_f / 1e9:.1f} GFLOP in all, {enc_f / 1e9 / enc_s:.1f} GFLOP/s achieved), decode "
          f"{dec_f / 2 / (w * h * iterations):.0f} MAC per pixel per iteration ({dec_f / 1e9 / dec_s:.1f} GFLOP/s)")


def entropy_speed(data: bytes, m, runs: int) -> None:
    """Decode the planes of `data` once, then time coding and decoding them with the model's tables."""
    f = container.read(data)
    shape = (m.model.config.bits, -(-f.header.height // 16), -(-f.header.width // 16))
    dec = m.plane_coder()
    planes = [dec.decode(p, shape) for p in f.iterations]
    enc_t, dec_t = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        coder = m.plane_coder()
        payloads = [coder.encode(p) for p in planes]
        enc_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        coder = m.plane_coder()
        for p in payloads:
            coder.decode(p, shape)
        dec_t.append(time.perf_counter() - t0)
    print(f"entropy coding alone, {len(planes)} planes of {shape[0]}x{shape[1]}x{shape[2]} bits: "
          f"encode median {statistics.median(enc_t):.3f} s, decode median {statistics.median(dec_t):.3f} s")


if __name__ == "__main__":
    raise SystemExit(main())

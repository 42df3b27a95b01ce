#!/usr/bin/env python3
"""Speed, in one run: each model's encode and decode beside CompressAI's bmshj2018-hyperprior (quality 4), the two
alternated in one process so that a slow moment of the machine hits both, as ratios; the command line's start-up;
optionally the networks' work, the entropy coder alone, and images per second on a GPU.

    python scripts/bench_speed.py ../shared/data/kodak/kodim01.png --models fast best --iterations 8 --threads 2
    python scripts/bench_speed.py IMAGE --models best --precisions fp32 bf16   # the two arithmetics side by side
    python scripts/bench_speed.py IMAGE --entropy --work        # + the entropy coder alone, MACs per pixel
    python scripts/bench_speed.py IMAGE --kodak ../shared/data/kodak --device cuda   # + images per second at -i 16
    python scripts/bench_speed.py IMAGE --kodak DIR --no-peer --batch 4   # the same, 4 images per network call

lstmcodec's times are whole API calls (network, entropy coding, container); CompressAI's are model.compress /
model.decompress (network and entropy coding). CompressAI is optional (pip install compressai). It fetches its
trained weights on first use; where it cannot (no network), it runs with initial weights: the same convolutions, so
the same network time, but its entropy coder then codes untrained latents (marked "untrained").
Medians of --runs rounds.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from lstmcodec.coding import batching
from lstmcodec.format import container
from lstmcodec.models import zoo
from lstmcodec.coding.tensors import to_tensor
from lstmcodec.io.files import list_images
from lstmcodec.geometry import blocks
from lstmcodec.io.imageio import open_image, prepare
from lstmcodec.nets.decoding import reconstruct


def peer_model():
    """CompressAI's hyperprior (trained if its weights can be fetched) and whether it is trained; (None, ...)
    without CompressAI."""
    try:
        from compressai.zoo import bmshj2018_hyperprior
    except ImportError:
        return None, False
    try:
        model, trained = bmshj2018_hyperprior(quality=4, pretrained=True), True
    except Exception:  # no network for the weights
        model, trained = bmshj2018_hyperprior(quality=4, pretrained=False), False
    model.eval().update(force=True)
    return model, trained


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def start_up(sample: bytes, tmp: Path) -> dict[str, float]:
    """Wall time of `lstmcodec --version` and `lstmcodec info FILE` in fresh processes (best of 3)."""
    f = tmp / "sample.lstm"
    f.write_bytes(sample)
    out = {}
    for name, args in (("--version", ["--version"]), ("info", ["info", str(f)])):
        out[name] = min(timed(lambda: subprocess.run([sys.executable, "-m", "lstmcodec", *args], check=True,
                                                     capture_output=True)) for _ in range(3))
    return out


def work(codec, rgb, iterations: int, enc_s: float, dec_s: float) -> str:
    """Multiply-accumulates of the networks per pixel per iteration (torch's FLOP counter, told about the cells'
    in-place addmm_), and the rate the measured times achieve."""
    from torch.utils.flop_counter import FlopCounterMode

    def addmm_flop(_c_shape, a_shape, b_shape, **_kwargs) -> int:  # c += a @ b
        return 2 * a_shape[0] * a_shape[1] * b_shape[1]

    counted = {torch.ops.aten.addmm_: addmm_flop}
    h, w = rgb.shape[:2]
    with torch.inference_mode():
        x = to_tensor(rgb, codec.device)
        with FlopCounterMode(display=False, custom_mapping=counted) as enc:
            for _ in codec.iterate(x, iterations, decode_last=False):
                pass
        with FlopCounterMode(display=False, custom_mapping=counted) as dec:
            for _ in reconstruct(codec, (torch.ones(1, codec.config.bits, *blocks(h, w), device=codec.device)
                                        for _ in range(iterations)), every=False):
                pass
    e, d = enc.get_total_flops(), dec.get_total_flops()
    return (f"networks: encode {e / 2 / (w * h * iterations):.0f} MAC per pixel per iteration ({e / 1e9 / enc_s:.1f} "
            f"GFLOP/s achieved), decode {d / 2 / (w * h * iterations):.0f} ({d / 1e9 / dec_s:.1f} GFLOP/s)")


def entropy_speed(codec, data: bytes, runs: int) -> str:
    """Coding and decoding a file's planes with the model's tables alone (the networks left out)."""
    f = container.read(data)
    shape = (codec.config.bits, *blocks(f.header.height, f.header.width))
    dec = codec.plane_coder()
    planes = [dec.decode(p, shape) for p in f.iterations]
    payloads = list(f.iterations)
    enc_t, dec_t = [], []
    for _ in range(runs):
        coder = codec.plane_coder()
        enc_t.append(timed(lambda: [coder.encode(p) for p in planes]))
        coder = codec.plane_coder()
        dec_t.append(timed(lambda: [coder.decode(p, shape) for p in payloads]))
    return (f"entropy coding alone, {len(planes)} planes of {shape[0]}x{shape[1]}x{shape[2]} bits: encode "
            f"{statistics.median(enc_t):.3f} s, decode {statistics.median(dec_t):.3f} s")


def images_per_second(model: str, folder: str, device: str, precision: str = "auto", iterations: int = 16,
                      batch: int | None = None) -> str:
    """Kodak-style throughput: every image of `folder` encoded, then every file decoded, the model loaded once and
    the networks taking up to `batch` images of one size at once (coding.batching: compress_many / decompress_many; default:
    their own, codec.BATCH on CUDA and 1 on the CPU). Images per second of encoding and of decoding."""
    codec = zoo.load_codec(model, device, precision)
    batch = batching.default_batch(codec.device) if batch is None else batch
    try:
        srcs = [prepare(open_image(f)) for f in list_images([folder])]
    except FileNotFoundError as e:
        raise SystemExit(f"error: {e}") from None
    batching.decompress_many(codec, [r.data for r in batching.encode_sources(codec, srcs[:batch], iterations, batch)], batch=batch)  # warm-up

    def sync():
        if codec.device.type == "cuda":
            torch.cuda.synchronize()

    sync()
    t0 = time.perf_counter()
    files = [r.data for r in batching.encode_sources(codec, srcs, iterations, batch)]
    sync()
    t1 = time.perf_counter()
    batching.decompress_many(codec, files, batch=batch)
    sync()
    t2 = time.perf_counter()
    n = len(srcs)
    return (f"{model} ({codec.precision}) on {device}, batches of up to {batch}: {n} images of {folder} at "
            f"-i {iterations}: encode {n / (t1 - t0):.2f}, decode {n / (t2 - t1):.2f} images per second")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image")
    p.add_argument("--models", nargs="+", default=[zoo.DEFAULT_CODEC])
    p.add_argument("--iterations", type=int, default=8)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precisions", nargs="+", default=["auto"], choices=zoo.PRECISIONS,
                   help="each model in each of these arithmetics (auto: zoo.resolve_precision's choice)")
    p.add_argument("--no-peer", action="store_true", help="leave CompressAI out")
    p.add_argument("--entropy", action="store_true", help="also time the entropy coder alone")
    p.add_argument("--work", action="store_true", help="also count the networks' multiply-accumulates")
    p.add_argument("--kodak", metavar="DIR", help="also images per second on this folder at -i 16")
    p.add_argument("--batch", type=int, default=None,
                   help="with --kodak: images per network call (default: 16 on CUDA, 1 on the CPU)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    src = prepare(open_image(args.image))
    h, w = src.rgb.shape[:2]
    dev = zoo.select(args.device)
    codecs = {f"{m} ({zoo.resolve_precision(q, dev, m)})": zoo.load_codec(m, args.device, q)
              for m in args.models for q in args.precisions}
    peer, trained = (None, False) if args.no_peer else peer_model()
    x = torch.from_numpy(src.rgb.copy()).permute(2, 0, 1)[None].float() / 255
    if peer is not None and (h % 64 or w % 64):
        sys.exit("error: CompressAI's hyperprior needs sides that are multiples of 64 (Kodak's 768x512 are)")

    def ours(codec):
        t0 = time.perf_counter()
        data = codec.encode_source(src, args.iterations).data
        t1 = time.perf_counter()
        codec.decompress(data)
        return t1 - t0, time.perf_counter() - t1, len(data)

    def theirs():
        with torch.inference_mode():
            t0 = time.perf_counter()
            out = peer.compress(x)
            t1 = time.perf_counter()
            peer.decompress(out["strings"], out["shape"])
            return t1 - t0, time.perf_counter() - t1, sum(len(s[0]) for s in out["strings"])

    runs: dict[str, list] = {m: [] for m in codecs}
    runs["hyperprior"] = []
    for m, c in codecs.items():  # warm-up: kernels chosen, caches filled
        c.decompress(c.encode_source(src, args.iterations).data)
    if peer is not None:
        theirs()
    for _ in range(args.runs):  # interleaved
        for m, c in codecs.items():
            runs[m].append(ours(c))
        if peer is not None:
            runs["hyperprior"].append(theirs())
    med = {k: [statistics.median(r[i] for r in v) for i in range(3)] for k, v in runs.items() if v}
    print(f"{args.image}: {w}x{h}, torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"{args.runs} interleaved rounds, medians")
    for m in codecs:
        e, d, n = med[m]
        line = f"lstmcodec {m} -i {args.iterations}: encode {e:.3f} s, decode {d:.3f} s, {8 * n / (w * h):.3f} bpp"
        if "hyperprior" in med:
            pe, pd, _ = med["hyperprior"]
            line += f"; ratio to the hyperprior: encode {e / pe:.2f}x, decode {d / pd:.2f}x"
        print(line)
        if args.work:
            print("  " + work(codecs[m], src.rgb, args.iterations, e, d))
        if args.entropy:
            print("  " + entropy_speed(codecs[m], codecs[m].encode_source(src, args.iterations).data, args.runs))
    if "hyperprior" in med:
        pe, pd, pn = med["hyperprior"]
        print(f"bmshj2018-hyperprior q4{'' if trained else ' (untrained)'}: encode {pe:.3f} s, decode {pd:.3f} s, "
              f"{8 * pn / (w * h):.3f} bpp")
    with tempfile.TemporaryDirectory() as tmp:
        t = start_up(next(iter(codecs.values())).encode_source(src, 1).data, Path(tmp))
    print("start-up: " + ", ".join(f"lstmcodec {k} {v:.2f} s" for k, v in t.items()) + " (fresh processes, best of 3)")
    if args.kodak:
        for m in args.models:
            for q in args.precisions:
                print(images_per_second(m, args.kodak, args.device, q, batch=args.batch))
    print(f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

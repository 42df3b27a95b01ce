#!/usr/bin/env python3
"""Train the recurrent codec on folders of images (random crops; L1, SSIM-weighted L1, MS-SSIM or a mix
over every iteration's reconstruction; Adam).

    python scripts/train_codec.py ../shared/data/bsds432 --out runs/codec --steps 20000
    python scripts/train_codec.py ../shared/data/bsds432 --out runs/ft --init fast --steps 3000 --lr 2e-4
    python scripts/train_codec.py --recipe recipes/fast.toml --out runs/fast      # a bundled model, from scratch

The network: a run that resumes (OUT/last.pt exists) keeps its checkpoint's network; --init takes the
configuration stored in the weights file, and the shape options below override only what they name; a
change of cell widths or hidden kernels must be asked for with --resize. Without either, the defaults.

Runs on lstmcodec.training.runtime: resumes from OUT/last.pt, checkpoints every few minutes, stops cleanly
at --time-limit, logs to OUT/log.csv; `torchrun --nproc_per_node N scripts/train_codec.py ...` for DDP.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

from lstmcodec.training import data, losses, recipes, runtime, runs as training
from lstmcodec.coding.codec import Codec
from lstmcodec.geometry import BLOCK
from lstmcodec.nets.config import CodecConfig

SHAPE_OPTIONS = {  # option dest -> CodecConfig field (None in args: not named on the command line)
    "width": "width", "cell": "cell", "iterations": "iterations", "additive": "additive",
    "decoder_hidden_kernel": "decoder_hidden_kernel", "decoder_hidden": "decoder_hidden",
    "encoder_hidden": "encoder_hidden", "priming": "priming", "residual_gain": "residual_gain", "blocks": "blocks",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="*", help="image folders (or files) to train on")
    p.add_argument("--out", default="runs/codec", help="run folder: checkpoints and log.csv")
    recipes.add_recipe_arguments(p)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=int, default=32, help=f"crop size in pixels (a multiple of {BLOCK})")
    p.add_argument("--hard", type=float, default=0.0, help="fraction of easy candidate crops discarded (0 = plain random crops)")
    shape = p.add_argument_group("network shape (default: inherited from --init or the resumed run, else the paper's at --width 0.25)")
    shape.add_argument("--iterations", type=int, help="iterations unrolled in training (the model's trained count; default 16)")
    shape.add_argument("--width", type=float, help="channel multiplier of the paper's network (default 0.25)")
    shape.add_argument("--cell", choices=["lstm", "gru"])
    shape.add_argument("--one-shot", dest="additive", action="store_const", const=False,
                       help="one-shot reconstruction instead of additive")
    shape.add_argument("--priming", type=int, help="hidden-state priming: extra encoder / decoder runs in the first "
                       "iteration (Johnston et al. 2018; stored in the model, so decoding repeats them)")
    shape.add_argument("--residual-gain", action=argparse.BooleanOptionalAction, default=None,
                       help="learn a gain per iteration that scales the residual the encoder sees and the decoder's "
                            "output (lstmcodec/nets/recurrent.py); starts at 1")
    shape.add_argument("--decoder-hidden-kernel", type=int, choices=[1, 3],
                       help="hidden-state kernel of the decoder's two full-resolution cells (1: a cheaper decoder)")
    shape.add_argument("--decoder-hidden", type=int, nargs=4, metavar="C",
                       help="hidden channels of the decoder's four cells (default: 512 512 256 128 times --width)")
    shape.add_argument("--encoder-hidden", type=int, nargs=3, metavar="C",
                       help="hidden channels of the encoder's three cells (default: 256 512 512 times --width)")
    shape.add_argument("--blocks", type=int, nargs="+", metavar="T",
                       help="iterations (from 0) where a network with its own weights takes over; a new block starts as a "
                            "copy of the network before it (lstmcodec/nets/recurrent.py)")
    shape.add_argument("--resize", action="store_true", help="with --init: allow the shape options to grow or shrink "
                       "the network (cells keep the channels their next layer reads most, new channels start unread; "
                       "3x3 hidden kernels become their centre taps)")
    p.add_argument("--init", metavar="WEIGHTS", help="start from a codec weights file (bundled name or path), with its "
                   "configuration")
    p.add_argument("--train-from", type=int, default=0, metavar="T", help="train only the block that starts at "
                   "iteration T (from 0; one of --blocks): the networks before it are frozen and run without gradients, "
                   "the loss and rate count iterations T+1.. only, and the later blocks are frozen too")
    p.add_argument("--short-iterations", type=int, default=0, help="unroll only this many iterations during the first --short-fraction of the steps")
    p.add_argument("--short-fraction", type=float, default=0.5)
    p.add_argument("--sign-bits", action="store_true", help="binarize with inference's sign in training too (straight-"
                   "through gradient) instead of the paper's stochastic bits: no train / test mismatch in what the decoder sees")
    losses.add_objective_arguments(p)
    p.add_argument("--adaptive-fraction", type=float, default=0.0,
                   help="fraction of the crops whose 32x32 tiles stop at random iterations, as in the encoder's "
                        "spatially adaptive mode (the decoder learns zero bits next to live ones)")
    p.add_argument("--channels-last", action="store_true", help="hold the network's weights and the crops in "
                   "channels-last memory (NHWC)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--schedule", choices=["cosine", "constant", "sawtooth"], default="cosine")
    p.add_argument("--min-lr-ratio", type=float, default=0.05)
    p.add_argument("--clip", type=float, default=0.5)
    p.add_argument("--ema", type=float, default=0.0)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--log-every", type=int, default=20)
    runtime.add_runtime_arguments(p)
    p.add_argument("--export", help="write the trained weights (fp16) to this .pt file when training finishes")
    p.add_argument("--name", help="model name recorded in the exported weights (default: the run folder's name; never "
                   "a bundled model's)")
    p.add_argument("--export-only", action="store_true", help="export OUT/last.pt (its EMA weights if any) to --export and exit")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args, started = training.script_start("codec", parser, argv, main)
    if started is not None:
        return started
    if not args.data:
        sys.exit("error: give the image folders to train on (or --recipe FILE)")
    if args.crop % BLOCK:
        sys.exit(f"error: --crop must be a multiple of {BLOCK}")
    try:
        train_files, val_files = data.split_holdout(data.list_images(args.data))
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")
    runtime.log(f"{len(train_files)} training images, {len(val_files)} held back for validation")

    runtime.seed_everything(args.seed)  # before the model is built: its initial weights come from the seed
    try:
        model, config = build_model(args)
    except training.InitError as e:
        sys.exit(f"error: {'--init ' + args.init + ': ' if args.init else ''}{e}")
    runtime.log(f"network {config}: {sum(p.numel() for p in model.parameters()):,} parameters")
    model.set_stochastic_bits(not args.sign_bits)
    if args.train_from:
        train_only_block(model, args.train_from)
    device = runtime.select_device(args.device)
    images = [data.load_rgb(f) for f in train_files]  # on a GPU, held there: the crops are cut on the device
    batches = data.RandomCrops(images, args.crop, args.batch, seed=args.seed, hard=args.hard,
                               device=device if device.type == "cuda" else "cpu")
    val = [data.center_crop(data.load_rgb(f), 256) for f in val_files[:8]]
    iterations = config.iterations
    short_until = int(args.steps * args.short_fraction) if args.short_iterations else 0

    if args.channels_last:
        model.to(memory_format=torch.channels_last)

    def batch_fn(step: int):  # step counts over all ranks; the unroll length travels with the batch
        t = args.short_iterations if step // _world() < short_until else iterations
        x = batches(step)
        return (x.contiguous(memory_format=torch.channels_last) if args.channels_last else x), t

    criterion = losses.criterion(args, config.bits)
    def loss_with_t(net, batch):
        if args.compile and not model.compiled:   # each encoder and decoder step compiled once, at the first step:
            model.compile_training()              # after runtime.fit's EMA copy, which stays eager
        x, t = batch
        stops = random_stops(x, int(t), args.adaptive_fraction) if args.adaptive_fraction else None
        return criterion(net(x, int(t), stops, grad_from=args.train_from), x)

    def evaluate(net, step: int) -> dict:
        return training.validate_codec(net, val, iterations, criterion)

    fit_cfg = runtime.FitConfig(
        out_dir=args.out, steps=args.steps, lr=args.lr, warmup=args.warmup, schedule=args.schedule,
        min_lr_ratio=args.min_lr_ratio, clip=args.clip, ema=args.ema, seed=args.seed, device=args.device,
        compile=False, amp=not args.no_amp, cpu_amp=args.cpu_amp, eval_every=args.eval_every,
        log_every=args.log_every, checkpoint_every_s=args.checkpoint_every, time_limit_s=args.time_limit,
        stop_at=args.stop_at, schedule_over=args.schedule_over, eval_at_start=args.eval_at_start, extra=vars(args),
    )
    result = runtime.fit(model, batch_fn, loss_with_t, fit_cfg, evaluate=evaluate if val else None,
                         meta={"codec_config": config.to_dict()}, criterion=criterion)
    if args.export and result.finished and os.environ.get("RANK", "0") == "0":
        fp = training.export_codec(result.model.cpu(), args.export, args.name,
                                   meta={"steps": result.step, "train": {k: v for k, v in vars(args).items() if k != "export"}})
        runtime.log(f"exported {args.export} (fingerprint {fp.hex()})")
    return 0


def build_model(args) -> tuple[Codec, CodecConfig]:
    """The run's network: the resumed checkpoint's, or --init's with the named shape options, or a new one."""
    overrides = {field: tuple(v) if isinstance(v, list) else v
                 for dest, field in SHAPE_OPTIONS.items() if (v := getattr(args, dest)) is not None}
    resumed = training.checkpoint_config(args.out)
    source = training.load_init(args.init) if args.init and resumed is None else None
    config = training.codec_config(overrides, source, resumed, args.resize)
    if source is None:
        return Codec(config), config
    model = training.init_codec(config, source)
    runtime.log(f"initialised from {args.init}")
    return model, config


def train_only_block(model: Codec, first: int) -> None:
    """--train-from: only the block that starts at iteration `first` trains; the others are frozen."""
    if first not in model.config.blocks:
        sys.exit(f"error: --train-from {first} must be where a block starts (--blocks: "
                 f"{' '.join(map(str, model.config.blocks)) or 'none'})")
    trained = model.block(first)
    for k, networks in enumerate(model.all_networks()):
        for part in networks:
            part.requires_grad_(k == trained)


def random_stops(x: torch.Tensor, iterations: int, fraction: float, tile: int = 2) -> torch.Tensor:
    """Per-block iteration counts (N x 1 x H/16 x W/16): in `fraction` of the crops every tile of
    tile x tile blocks stops after a uniform random 1..iterations, in the others every block runs them all."""
    n, _, h, w = x.shape
    th, tw = -(-h // (BLOCK * tile)), -(-w // (BLOCK * tile))
    stops = torch.randint(1, iterations + 1, (n, 1, th, tw), device=x.device)
    stops = torch.where(torch.rand(n, 1, 1, 1, device=x.device) < fraction, stops, iterations)
    return stops.repeat_interleave(tile, 2).repeat_interleave(tile, 3)[:, :, :h // BLOCK, :w // BLOCK]


def _world() -> int:
    return int(os.environ.get("WORLD_SIZE", 1))


if __name__ == "__main__":
    raise SystemExit(main())

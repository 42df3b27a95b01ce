#!/usr/bin/env python3
"""Train a denoiser: MNIST, CIFAR-10 or a folder of photographs, under a chosen noise model.

    # the MNIST experiment: autoencoder (a), half gaussian (mean -20, variance 600) half speckle
    python scripts/train_denoiser.py mnist ../shared/data/mnist --arch conv-ae --noise mix --mean -20 --var 600 \\
        --out runs/dn-mnist --export weights/denoise-mnist.pt --name mnist
    # (c) the small CIFAR-10 autoencoder, binary cross-entropy
    python scripts/train_denoiser.py cifar10 ../shared/data/cifar10-png.zip --arch cifar-ae --loss bce --out runs/dn-cifar
    # (d) a blind colour photo denoiser, gaussian sigma 0..50 on 0-255: DnCNN-style stack, or a U-Net
    python scripts/train_denoiser.py folder ../shared/data/bsds432 --arch residual --noise gaussian --sigma-max 50 \\
        --out runs/dn-photo --export weights/denoise-photo.pt --name photo
    python scripts/train_denoiser.py folder ../shared/data/bsds432 --arch unet --width 32 --sigma-max 50 --no-clip \\
        --crop 80 --batch 16 --lr 1e-3 --schedule cosine --cpu-amp --out runs/dn-unet

MNIST / CIFAR train in epochs over the training split and report the test MSE every epoch (a run stops
early once the epoch's training loss reaches --target-loss). Photographs train on random crops; every
--eval-every steps the held-back photographs (every 20th file) are measured at sigma 25 with a fixed seed.
Runs on lstmcodec.training.runtime (resume, --time-limit, AMP, torch.compile, torchrun).
"""
from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path

import torch
from torch.nn import functional as F

from lstmcodec.training import data, recipes, runtime, runs as training
from lstmcodec.models import weights, zoo
from lstmcodec.errors import CodecError
from lstmcodec.nets import denoise

SHAPE_DEFAULTS = {"arch": "conv-ae", "decoder": "transpose", "width": 64, "depth": 17, "down": 1, "blocks": 2, "hidden": 64}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", nargs="?", choices=["mnist", "cifar10", "folder"])
    p.add_argument("data", nargs="*", help="MNIST idx folder; CIFAR-10 pickles / image folder / zip; or photo folders")
    p.add_argument("--out", default="runs/denoiser")
    recipes.add_recipe_arguments(p)
    shape = p.add_argument_group("network shape (default: inherited from --init or the resumed run; else the values shown)")
    shape.add_argument("--arch", choices=sorted(denoise.ARCHS), help="[conv-ae]")
    shape.add_argument("--decoder", choices=["transpose", "upsample"], help="conv-ae decoder: (a) or (b) [transpose]")
    shape.add_argument("--width", type=int, help="residual: channels; unet: channels at full resolution [64]")
    shape.add_argument("--depth", type=int, help="residual: convolution layers [17]")
    shape.add_argument("--down", type=int, help="residual: pixel-unshuffle factor (2: the stack runs at half resolution) [1]")
    shape.add_argument("--blocks", type=int, help="unet: 3x3 convolutions per scale (the coarsest gets one more) [2]")
    shape.add_argument("--hidden", type=int, help="dense-ae: units of the hidden layer [64]")
    p.add_argument("--noise", choices=list(data.Noise.KINDS), default="gaussian")
    p.add_argument("--mean", type=float, default=0.0, help="gaussian mean, 0-255 scale")
    p.add_argument("--var", type=float, default=625.0, help="gaussian variance, 0-255 scale")
    p.add_argument("--sigma-min", type=float, default=0.0)
    p.add_argument("--sigma-max", type=float, default=0.0, help="> 0: blind gaussian, std uniform in [sigma-min, sigma-max] per image")
    p.add_argument("--scale", type=float, default=1.0, help="speckle scale")
    p.add_argument("--amount", type=float, default=0.05, help="salt-and-pepper fraction")
    p.add_argument("--peak", type=float, default=30.0, help="poisson peak")
    p.add_argument("--no-clip", action="store_true", help="do not clip noisy images to [0, 1] (the usual AWGN benchmark protocol)")
    p.add_argument("--photo-noise", action="store_true", help="clip and round noisy images to 8 bits, as a noisy "
                   "photograph saved to a file is (what `lstmcodec denoise` is given); also for the held-back check")
    p.add_argument("--photo-fraction", type=float, default=1.0, help="with --photo-noise: the share of the images "
                   "so treated (drawn per image); the rest keep unclipped noise, the benchmarks' protocol")
    p.add_argument("--rotate", action="store_true", help="photos: transpose half the crops too (all eight rotations "
                   "and mirror images, not only the four flips)")
    p.add_argument("--fixed-noise", action="store_true", help="MNIST / CIFAR: draw the training split's noise once "
                   "(seeded), as the MNIST experiment does, instead of afresh at every step")
    p.add_argument("--loss", choices=["mse", "l1", "bce"], default="mse")
    p.add_argument("--epochs", type=float, default=120, help="MNIST / CIFAR: at most this many epochs")
    p.add_argument("--target-loss", type=float, default=0.0, help="MNIST / CIFAR: stop when an epoch's mean training loss reaches this")
    p.add_argument("--steps", type=int, default=20_000, help="photos: training steps")
    p.add_argument("--crop", type=int, default=64, help="photos: crop size")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--schedule", choices=["cosine", "linear", "constant"], default="constant")
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--clip-grad", type=float, default=0.0)
    p.add_argument("--eval-every", type=int, default=1000, help="photos: steps between evaluations")
    p.add_argument("--export", help="write the trained weights (fp16) here when training ends")
    p.add_argument("--name", help="model name recorded in the exported weights")
    p.add_argument("--init", metavar="WEIGHTS", help="fine-tune a denoiser weights file (name or path), with its "
                   "architecture and configuration; optimiser and schedule start afresh")
    p.add_argument("--evaluate", metavar="WEIGHTS", help="only measure a weights file (name or path): test MSE, or held-back PSNR")
    p.add_argument("--export-only", action="store_true", help="export OUT/last.pt to --export and exit (e.g. after --time-limit)")
    runtime.add_runtime_arguments(p)
    return p


def model_config(arch: str, shape: dict, channels: int, size: int) -> dict:
    """The configuration of a new `arch` network (shape: the named options, the defaults for the rest; size: the
    side of the training images, which only the dense autoencoder is tied to)."""
    v = {**SHAPE_DEFAULTS, **shape}
    if arch == "conv-ae":
        return {"in_channels": channels, "decoder": v["decoder"]}
    if arch in ("cifar-ae", "pool-ae"):
        return {"in_channels": channels}
    if arch == "dense-ae":
        if not size:
            raise training.InitError("the dense autoencoder needs images of one size (MNIST, CIFAR-10), not photographs")
        return {"in_channels": channels, "size": size, "hidden": v["hidden"]}
    if arch == "unet":
        return {"in_channels": channels, "width": v["width"], "blocks": v["blocks"]}
    return {"in_channels": channels, "width": v["width"], "depth": v["depth"], "down": v["down"]}


def inherited_shape(shape: dict, arch: str, config: dict, source: str) -> None:
    """Refuses named shape options that differ from the network a run starts from (a denoiser's shape is fixed)."""
    have = {"arch": arch, **config}
    changed = {k: v for k, v in shape.items() if k in have and have[k] != v or k not in have and k != "arch"}
    if changed:
        k, v = next(iter(changed.items()))
        raise training.InitError(f"--{k} {v} does not fit {source} ({arch} {config}); a denoiser's shape does not "
                                 "change in fine-tuning")


def main(argv=None) -> int:
    parser = build_parser()
    args, started = training.script_start("denoise", parser, argv, main)
    if started is not None:
        return started
    if not args.dataset or not args.data:
        parser.error("give the data set and its folder (or --recipe FILE)")
    noise = data.Noise(kind=args.noise, mean=args.mean, var=args.var, sigma_min=args.sigma_min, sigma_max=args.sigma_max,
                       scale=args.scale, amount=args.amount, peak=args.peak, clip=not args.no_clip, round=args.photo_noise,
                       round_fraction=args.photo_fraction)
    device = runtime.select_device(args.device)
    try:
        batch_fn, evaluate, steps, eval_every, channels, size = (photo_task if args.dataset == "folder" else set_task)(args, noise, device)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    if args.evaluate:
        net = training.evaluated_net("denoise", args.evaluate)
        with torch.no_grad():
            res = evaluate(net.model, 0)
        print(f"{net.name}: " + " ".join(f"{k} {v:.5g}" for k, v in res.items() if k != "epoch"))
        return 0
    runtime.seed_everything(args.seed)
    try:
        arch, config, model = build_model(args, channels, size)
    except training.InitError as e:
        sys.exit(f"error: {'--init ' + args.init + ': ' if args.init else ''}{e}")
    args.arch = arch
    if args.loss == "bce" and not hasattr(model, "logits"):
        sys.exit("error: --loss bce needs an autoencoder with a sigmoid output (cifar-ae, dense-ae, pool-ae)")
    runtime.log(f"{arch} {config}: {sum(p.numel() for p in model.parameters()):,} parameters, noise {args.noise}, on {device}")

    epoch_losses: list[float] = []  # the training loss of the current epoch (MNIST / CIFAR early stop)

    def loss_fn(net, batch):
        noisy, clean = batch
        if args.loss == "bce":
            logits = (net.module if hasattr(net, "module") else net).logits(noisy).float()
            loss = F.binary_cross_entropy_with_logits(logits, clean)
            mse = F.mse_loss(torch.sigmoid(logits.detach()), clean)
        else:
            out = net(noisy).float()
            mse = F.mse_loss(out, clean)
            loss = mse if args.loss == "mse" else (out - clean).abs().mean()
        epoch_losses.append(float(mse.detach()))
        return loss, {"mse": mse.detach()}

    def evaluate_and_reset(net, step: int) -> dict:
        res = evaluate(net, step)
        if epoch_losses:
            res["train_mse"] = sum(epoch_losses) / len(epoch_losses)
        epoch_losses.clear()
        return res

    fit_cfg = runtime.FitConfig(
        out_dir=args.out, steps=steps, lr=args.lr, warmup=args.warmup, schedule=args.schedule, clip=args.clip_grad,
        seed=args.seed, device=args.device, compile=args.compile, amp=not args.no_amp, cpu_amp=args.cpu_amp, eval_every=eval_every,
        log_every=max(1, min(100, eval_every // 5)), time_limit_s=args.time_limit, stop_at=args.stop_at, schedule_over=args.schedule_over,
        eval_at_start=args.eval_at_start, checkpoint_every_s=args.checkpoint_every, extra=vars(args),
    )
    stop = (lambda r: r.get("train_mse", 1.0) <= args.target_loss) if args.target_loss and args.dataset != "folder" else None
    result = runtime.fit(model, batch_fn, loss_fn, fit_cfg, evaluate=evaluate_and_reset, meta={"config": config, "arch": arch}, stop=stop)
    runtime.log("final: " + " ".join(f"{k} {v:.5g}" for k, v in result.metrics.items()))
    if args.export:
        meta = {"steps": result.step, "metrics": {k: float(v) for k, v in result.metrics.items()},
                "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                "train": {k: v for k, v in vars(args).items() if k != "export"}}
        weights.save(weights.net_blob(result.model.cpu().float(), args.name, "denoise", arch, config, meta), args.export)
        runtime.log(f"exported {args.export}")
    return 0


def build_model(args, channels: int, size: int) -> tuple[str, dict, torch.nn.Module]:
    """The run's network: the resumed checkpoint's, or --init's, or a new one of the named shape; named shape options
    that differ from a resumed or --init network are an InitError."""
    shape = {k: getattr(args, k) for k in SHAPE_DEFAULTS if getattr(args, k) is not None}
    resumed = training.checkpoint_config(args.out, "config")
    if resumed is not None:
        arch = runtime.load_checkpoint(Path(args.out) / "last.pt")["meta"]["arch"]
        inherited_shape(shape, arch, resumed, "the resumed run")
        return arch, resumed, denoise.build(arch, resumed)
    if args.init:
        try:
            start = zoo.load_net("denoise", args.init)
        except CodecError as e:
            raise training.InitError(str(e)) from None
        if start.config.get("in_channels") != channels:
            raise training.InitError(f"a {start.config.get('in_channels')}-channel denoiser, the data has {channels}")
        inherited_shape(shape, start.arch, start.config, "its network")
        return start.arch, start.config, copy.deepcopy(start.model).float().train().requires_grad_(True)
    arch = shape.get("arch", SHAPE_DEFAULTS["arch"])
    config = model_config(arch, shape, channels, size)
    return arch, config, denoise.build(arch, config)


def set_task(args, noise: data.Noise, device: torch.device):
    """MNIST / CIFAR-10: epochs over the training split; test MSE on the whole test split (fixed noise seed)."""
    load = data.load_mnist if args.dataset == "mnist" else data.load_cifar10
    train, test = load(args.data[0], "train"), load(args.data[0], "test")
    train_x = train.images.to(device)
    clean_test = test.images.float().div(255)
    noisy_test = noise(clean_test, torch.Generator().manual_seed(1234))
    sampler = data.EpochBatches(len(train), args.batch, seed=args.seed)
    # --fixed-noise: one noisy copy of the split, drawn once (the "halves" protocol then splits it by index)
    noisy_train = noise(train.images.float().div(255), torch.Generator().manual_seed(args.seed)).to(device) \
        if args.fixed_noise else None

    def batch_fn(step: int):
        idx = sampler(step).to(device)
        clean = train_x[idx].float().div(255)
        if noisy_train is not None:
            return noisy_train[idx], clean
        g = torch.Generator().manual_seed(args.seed * 7_000_003 + step)
        return noise(clean.cpu(), g).to(device), clean

    def evaluate(net, step: int) -> dict:
        dev = next(net.parameters()).device
        se = bce = 0.0
        for i in range(0, len(test), 1000):
            noisy, clean = noisy_test[i:i + 1000].to(dev), clean_test[i:i + 1000].to(dev)
            if hasattr(net, "logits"):
                logits = net.logits(noisy).float()
                bce += float(F.binary_cross_entropy_with_logits(logits, clean, reduction="sum"))
                out = torch.sigmoid(logits)
            else:
                out = net(noisy).float()
            se += float(F.mse_loss(out, clean, reduction="sum"))
        res = {"epoch": step / sampler.steps_per_epoch, "test_mse": se / clean_test.numel(),
               "noisy_mse": float(F.mse_loss(noisy_test, clean_test))}
        if hasattr(net, "logits"):
            res["test_bce"] = bce / clean_test.numel()
        return res

    steps = max(1, int(args.epochs * sampler.steps_per_epoch))
    return batch_fn, evaluate, steps, sampler.steps_per_epoch, train.images.shape[1], train.images.shape[-1]


def photo_task(args, noise: data.Noise, device: torch.device):
    """Folders of photographs: random crops with flips; PSNR of the held-back photos at sigma 25."""
    train_files, val_files = data.split_holdout(data.list_images(args.data))
    runtime.log(f"{len(train_files)} training photographs, {len(val_files)} held back")
    if not val_files:
        runtime.log("warning: too few photographs to hold any back; validating on a training photograph")
        val_files = train_files[:1]
    crops = data.RandomCrops([data.load_rgb(f) for f in train_files], args.crop, args.batch, seed=args.seed, rotate=args.rotate)
    val = [data.load_rgb(f).float().div(255)[None] for f in val_files[:8]]
    val_noise = data.Noise(kind="gaussian", var=25.0 ** 2, clip=noise.round, round=noise.round)
    val_noisy = [val_noise(x, torch.Generator().manual_seed(1234 + i)) for i, x in enumerate(val)]

    def batch_fn(step: int):
        clean = crops(step) + 0.5
        return noise(clean, torch.Generator().manual_seed(args.seed * 7_000_003 + step)), clean

    def evaluate(net, step: int) -> dict:
        dev = next(net.parameters()).device
        psnrs = [10 * math.log10(1 / float(F.mse_loss(net(y.to(dev)).clamp(0, 1).cpu(), x))) for x, y in zip(val, val_noisy)]
        return {"val_psnr_s25": sum(psnrs) / len(psnrs)}

    return batch_fn, evaluate, args.steps, args.eval_every, 3, 0


if __name__ == "__main__":
    raise SystemExit(main())

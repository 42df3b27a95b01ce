#!/usr/bin/env python3
"""Train an image classifier: MNIST, CIFAR-10 or any folder with one sub-folder per class.

    python scripts/train_classifier.py mnist ../shared/data/mnist --out runs/mnist --epochs 15 --export weights/mnist.pt
    python scripts/train_classifier.py cifar10 ../shared/data/cifar10-png.zip --cpu-amp --out runs/cifar --export weights/classify-cifar10.pt
    python scripts/train_classifier.py cifar10 ~/data/cifar-10-batches-py --out runs/cifar
    python scripts/train_classifier.py folder ~/photos/by-class --size 64 --out runs/mine

The data stays on the training device as uint8; augmentation (translation, flips) happens there, per
batch. Accuracy on the test split and the training wall time are printed after every epoch and written
to OUT/log.csv. Runs on lstmcodec.training.runtime (resume, --time-limit, AMP, torch.compile, torchrun).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import copy

import torch
from torch.nn import functional as F

from lstmcodec.training import data, recipes, runtime, runs as training
from lstmcodec.models import weights, zoo
from lstmcodec.errors import CodecError
from lstmcodec.nets import classify

PRESETS = {  # per data set: architecture and training settings that reach the targets (weights/README.md)
    "mnist": dict(arch="mnist-cnn", epochs=15, batch=128, lr=3e-3, optimizer="adamw", weight_decay=1e-4,
                  translate=2, flip=False, label_smoothing=0.0, widths=None, whiten=False, tta=False, shift_tta=False),
    "cifar10": dict(arch="fast-resnet", epochs=30, batch=256, lr=0.4, optimizer="sgd", weight_decay=5e-4,
                    translate=2, flip=True, label_smoothing=0.2, widths=[64, 256, 256], whiten=True, tta=True,
                    shift_tta=True),
    "folder": dict(arch="fast-resnet", epochs=30, batch=64, lr=0.05, optimizer="sgd", weight_decay=5e-4,
                   translate=4, flip=True, label_smoothing=0.1, widths=[64, 128, 256], whiten=False, tta=False,
                   shift_tta=False),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", nargs="?", choices=sorted(PRESETS))
    p.add_argument("data", nargs="?", help="MNIST idx folder; CIFAR-10 pickles folder, image folder or zip; or a class folder")
    p.add_argument("--out", default="runs/classifier")
    recipes.add_recipe_arguments(p)
    p.add_argument("--arch", choices=sorted(classify.ARCHS), help="default: the data set's preset")
    p.add_argument("--widths", type=int, nargs="+", help="fast-resnet group widths (cifar10: 64 256 256)")
    p.add_argument("--size", type=int, default=32, help="image side for a class folder")
    p.add_argument("--epochs", type=float)
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=["adamw", "sgd"])
    p.add_argument("--momentum", type=float, default=0.9, help="sgd: Nesterov momentum (0: plain SGD)")
    p.add_argument("--loss", choices=["cross-entropy", "mse-onehot"], default="cross-entropy",
                   help="mse-onehot: half the squared error of the outputs against one-hot labels, summed over the "
                   "classes (the MNIST experiment's; for a network with sigmoid outputs)")
    p.add_argument("--limit", type=int, default=0, help="train on the first N training images only (0: all)")
    p.add_argument("--no-shuffle", action="store_true", help="visit the training images in their order every epoch")
    p.add_argument("--no-standardize", action="store_true", help="inputs are pixel / 255, not standardised per channel")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--schedule", choices=["linear", "cosine", "sawtooth", "constant"], default="linear",
                   help="after the warm-up; sawtooth cycles lr -> lr/10 every epoch (the 90%% CIFAR-10 experiment)")
    p.add_argument("--warmup-epochs", type=float, default=0.3)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--translate", type=int, help="random translation in pixels")
    p.add_argument("--no-flip", action="store_true")
    on_off = argparse.BooleanOptionalAction
    p.add_argument("--tta", action=on_off, help="test-time augmentation: average logits of the image and its mirror")
    p.add_argument("--shift-tta", action=on_off, help="with --tta, also average views moved by one pixel (6 views)")
    p.add_argument("--whiten", action=on_off, help="fast-resnet: start the stem as a patch-whitening filter bank")
    p.add_argument("--ema", type=float, default=0.0, help="EMA decay of the weights (0: off); the EMA model is evaluated and exported")
    p.add_argument("--target", type=float, default=0.0, help="stop once test accuracy reaches this (e.g. 0.995)")
    p.add_argument("--export", help="write the trained weights (fp16) here when training ends")
    p.add_argument("--name", help="model name recorded in the exported weights (default: the data set)")
    p.add_argument("--evaluate", metavar="WEIGHTS", help="only measure a weights file (name or path) on the test split")
    p.add_argument("--init", metavar="WEIGHTS", help="fine-tune a classifier weights file (name or path), with its "
                   "architecture and configuration (the data must have its classes and image size)")
    p.add_argument("--export-only", action="store_true", help="export OUT/last.pt to --export and exit (e.g. after --time-limit)")
    runtime.add_runtime_arguments(p)
    return p


def parse_args(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    args = p.parse_args(argv)
    if args.recipe or not args.dataset:
        return args
    args.arch_given, args.widths_given = args.arch, args.widths  # what the command line named (None: not named)
    args.views_given = {"flip_tta": args.tta, "shift_tta": args.shift_tta}  # for --evaluate: None unless given
    for k, v in PRESETS[args.dataset].items():
        if k == "flip":
            args.flip = v and not args.no_flip
        elif getattr(args, k, None) is None:
            setattr(args, k, v)
    return args


def load(args) -> tuple[data.Labelled, data.Labelled]:
    if args.dataset == "mnist":
        return data.load_mnist(args.data, "train"), data.load_mnist(args.data, "test")
    if args.dataset == "cifar10":
        return data.load_cifar10(args.data, "train"), data.load_cifar10(args.data, "test")
    root = Path(args.data)
    if (root / "train").is_dir() and (root / "test").is_dir():
        train = data.load_image_folder(root / "train", args.size)
        extra = sorted({d.name for d in (root / "test").iterdir() if d.is_dir()} - set(train.classes))
        if extra:
            raise ValueError(f"{root / 'test'} has classes that {root / 'train'} lacks: {', '.join(extra)}")
        return train, data.load_image_folder(root / "test", args.size, classes=train.classes)
    full = data.load_image_folder(root, args.size)
    test_idx = torch.arange(len(full))[19::20]  # every 20th image is held back
    keep = torch.ones(len(full), dtype=torch.bool)
    keep[test_idx] = False
    return (data.Labelled(full.images[keep], full.labels[keep], full.classes),
            data.Labelled(full.images[test_idx], full.labels[test_idx], full.classes))


def main(argv=None) -> int:
    parser = build_parser()
    args, started = training.script_start("classify", parser, argv, main, parse_args)
    if started is not None:
        return started
    if not args.dataset or not args.data:
        parser.error("give the data set and its folder (or --recipe FILE)")
    try:
        train, test = load(args)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    if args.evaluate:
        return evaluate_only(args, test)
    device = runtime.select_device(args.device)
    if args.limit:
        train = data.Labelled(train.images[:args.limit], train.labels[:args.limit], train.classes)
    config = data_config(args, train)
    runtime.log(f"{args.dataset}: {len(train)} training, {len(test)} test images of {tuple(train.images.shape[1:])}, "
                f"{len(train.classes)} classes, {args.arch} on {device}")

    runtime.seed_everything(args.seed)
    try:
        model, config = build_model(args, config)
    except training.InitError as e:
        sys.exit(f"error: {'--init ' + args.init + ': ' if args.init else ''}{e}")
    if args.whiten and not args.init and training.checkpoint_config(args.out, "config") is None:
        if not hasattr(model, "init_whitening"):
            sys.exit(f"error: --whiten needs --arch fast-resnet, not {args.arch}")
        model.init_whitening(classify.normalize(train.images[:5000], config))
    model = model.to(memory_format=torch.channels_last)  # faster on CUDA and on CPU (1.3x, weights/README.md)
    # the data lives on the training device as uint8: no loader, no copies per step
    train_x, train_y = train.images.to(device), train.labels.to(device)
    test_x, test_y = test.images.to(device), test.labels.to(device)
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    sampler = data.EpochBatches(len(train), args.batch, seed=args.seed, shuffle=not args.no_shuffle)
    steps_per_epoch = sampler.steps_per_epoch // world
    steps = max(1, int(args.epochs * steps_per_epoch))

    def batch_fn(step: int):
        idx = sampler(step).to(device)
        g = torch.Generator().manual_seed(args.seed * 7_000_003 + step)
        x = data.augment(train_x[idx].float(), g, args.translate, args.flip)
        return classify.normalize(x, config), train_y[idx]

    epoch_error: list[torch.Tensor] = []  # the summed training loss of the current epoch (per image, as the MNIST text sums it)

    def loss_fn(net, batch):
        x, y = batch
        logits = net(x.contiguous(memory_format=torch.channels_last))
        if args.loss == "mse-onehot":
            loss = 0.5 * (logits.float() - F.one_hot(y, logits.shape[1]).float()).square().sum(1).mean()
        else:
            loss = F.cross_entropy(logits.float(), y, label_smoothing=args.label_smoothing)
        epoch_error.append(loss.detach() * len(y))  # summed at the evaluation: no device sync per step
        return loss, {"train_acc": (logits.argmax(1) == y).float().mean()}

    def evaluate(net, step: int) -> dict:
        # the one-pixel-shift views cost 3x: every epoch is measured with the mirror only, the end with all
        views = config if step >= steps else dict(config, shift_tta=False)
        res = {"epoch": step / steps_per_epoch, "test_acc": classify.accuracy(net, test_x, test_y, views)}
        if epoch_error:
            res["epoch_error"] = float(torch.stack(epoch_error).sum())
        epoch_error.clear()
        return res

    fit_cfg = runtime.FitConfig(
        out_dir=args.out, steps=steps, lr=args.lr, warmup=int(args.warmup_epochs * steps_per_epoch),
        schedule=args.schedule, cycle=steps_per_epoch, min_lr_ratio=0.1 if args.schedule == "sawtooth" else 0.0,
        optimizer=args.optimizer, momentum=args.momentum, weight_decay=args.weight_decay, clip=0.0, ema=args.ema, seed=args.seed, device=args.device,
        compile=args.compile, amp=not args.no_amp, cpu_amp=args.cpu_amp, eval_every=steps_per_epoch, log_every=max(1, steps_per_epoch // 5),
        time_limit_s=args.time_limit, stop_at=args.stop_at, schedule_over=args.schedule_over,
        eval_at_start=args.eval_at_start, checkpoint_every_s=args.checkpoint_every, extra=vars(args),
    )
    result = runtime.fit(model, batch_fn, loss_fn, fit_cfg, evaluate=evaluate, meta={"config": config, "arch": args.arch},
                         stop=(lambda r: r["test_acc"] >= args.target) if args.target else None)
    if rank == 0:
        report(args, result, config, device)
    return 0


def evaluate_only(args, test: data.Labelled) -> int:
    """--evaluate: the test accuracy of a classifier's weights, with their own test-time augmentation unless --tta /
    --shift-tta (or their --no- forms) say otherwise."""
    net = training.evaluated_net("classify", args.evaluate)
    config = dict(net.config, **{k: v for k, v in args.views_given.items() if v is not None})
    acc = classify.accuracy(net.model, test.images, test.labels, config)
    tta = [name for name, on in (("flip", config.get("flip_tta")), ("shift", config.get("shift_tta"))) if on]
    print(f"{net.name}: test accuracy {acc:.4f} on {len(test)} images" + (f" ({' + '.join(tta)} TTA)" if tta else ""))
    return 0


def data_config(args, train: data.Labelled) -> dict:
    """What the network and `classify` need to know of the data: its shape, classes, standardisation, views."""
    x_train = train.images.float()
    config = {
        "in_channels": train.images.shape[1], "size": train.images.shape[-1], "classes": train.classes,
        "mean": (x_train / 255).mean((0, 2, 3)).tolist(), "std": (x_train / 255).std((0, 2, 3)).tolist(),
    }
    if args.no_standardize:
        config["mean"], config["std"] = [0.0] * config["in_channels"], [1.0] * config["in_channels"]
    if args.arch == "fast-resnet":
        config["widths"] = list(args.widths or PRESETS["folder"]["widths"])
    config["flip_tta"] = bool(args.flip and args.tta)  # `classify` then averages the image and its mirror
    config["shift_tta"] = bool(config["flip_tta"] and args.shift_tta)  # ... and one-pixel shifts of both
    return config


def report(args, result: runtime.FitResult, config: dict, device: torch.device) -> None:
    """The run's test accuracy, and with --export its weights file."""
    acc = result.metrics.get("test_acc")
    runtime.log(f"test accuracy {acc:.4f} after {result.step} steps" if acc is not None else "stopped before an evaluation")
    if args.export:
        meta = {"steps": result.step, "test_acc": acc, "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                "train": {k: v for k, v in vars(args).items() if k != "export"}}
        weights.save(weights.net_blob(result.model.cpu().float(), args.name, "classify", args.arch, config, meta), args.export)
        runtime.log(f"exported {args.export}")


def build_model(args, config: dict) -> tuple[torch.nn.Module, dict]:
    """The run's network: the resumed checkpoint's or --init's (named --arch / --widths must agree with it, and the
    data must fit it), or a new one of `config`."""
    resumed = training.checkpoint_config(args.out, "config")
    if resumed is not None or args.init:
        if resumed is not None:
            arch, have, model = runtime.load_checkpoint(Path(args.out) / "last.pt")["meta"]["arch"], resumed, None
        else:
            try:
                start = zoo.load_net("classify", args.init)
            except CodecError as e:
                raise training.InitError(str(e)) from None
            arch, have, model = start.arch, start.config, copy.deepcopy(start.model).float().train().requires_grad_(True)
        for key, named in (("arch", args.arch_given), ("widths", args.widths_given)):
            value = arch if key == "arch" else have.get("widths")
            if named is not None and named != value:
                raise training.InitError(f"--{key} {named} does not fit its network ({arch}, widths {have.get('widths')})")
        for key in ("in_channels", "size", "classes"):
            if have.get(key) != config[key]:
                raise training.InitError(f"its {key} {have.get(key)} does not fit the data's {config[key]}")
        args.arch = arch
        return (model or classify.build(arch, have)), have
    return classify.build(args.arch, config), config


if __name__ == "__main__":
    raise SystemExit(main())

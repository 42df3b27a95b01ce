#!/usr/bin/env python3
"""Train the recurrent codec on folders of images (random crops; L1, SSIM-weighted L1, MS-SSIM or a mix
over every iteration's reconstruction; Adam).

    python scripts/train_codec.py ../shared/data/bsds432 --out runs/codec --steps 20000
    python scripts/train_codec.py ../shared/data/bsds432 --out runs/codec --export weights/lstm-w25.pt

Runs on lstmcodec.runtime: resumes from OUT/last.pt, checkpoints every few minutes, stops cleanly
at --time-limit, logs to OUT/log.csv; `torchrun --nproc_per_node N scripts/train_codec.py ...` for DDP.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lstmcodec import data, losses, metrics, runtime  # noqa: E402
from lstmcodec.nets.recurrent import CodecConfig, RecurrentCodec  # noqa: E402
from lstmcodec.weights import export_codec, load_codec  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="+", help="image folders (or files) to train on")
    p.add_argument("--out", default="runs/codec", help="run folder: checkpoints and log.csv")
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=int, default=32, help="crop size in pixels (a multiple of 16)")
    p.add_argument("--hard", type=float, default=0.0, help="fraction of easy candidate crops discarded (0 = plain random crops)")
    p.add_argument("--iterations", type=int, default=16, help="iterations unrolled in training (the model's trained count)")
    p.add_argument("--short-iterations", type=int, default=0, help="unroll only this many iterations during the first --short-fraction of the steps")
    p.add_argument("--short-fraction", type=float, default=0.5)
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--cell", choices=["lstm", "gru"], default="lstm")
    p.add_argument("--one-shot", action="store_true", help="one-shot reconstruction instead of additive")
    p.add_argument("--priming", type=int, default=0, help="hidden-state priming: extra encoder / decoder runs in the first "
                   "iteration (Johnston et al. 2018; stored in the model, so decoding repeats them)")
    p.add_argument("--residual-gain", action="store_true", help="learn a gain per iteration that scales the residual "
                   "the encoder sees and the decoder's output (lstmcodec/nets/recurrent.py); starts at 1")
    p.add_argument("--loss", choices=losses.LOSSES, default="l1", help="distortion averaged over the unrolled iterations "
                   "(lstmcodec/losses.py)")
    p.add_argument("--log-distortion", action="store_true", help="average log(distortion) over the iterations instead "
                   "of the distortion: late iterations weigh as much as early ones on a log (dB) scale")
    p.add_argument("--sign-bits", action="store_true", help="binarize with inference's sign in training too (straight-"
                   "through gradient) instead of the paper's stochastic bits: no train / test mismatch in what the decoder sees")
    p.add_argument("--rate-weight", type=float, default=0.0, metavar="LAMBDA", help="add LAMBDA times the bits per "
                   "raw bit of a logistic model of the bits fitted beside the codec (losses.BitRate): train for bits the "
                   "entropy coder predicts well, not only for distortion (0: off)")
    p.add_argument("--rate-form", choices=losses.RATE_FORMS, default="mean", help="--rate-weight prices the mean bits "
                   "per raw bit over all iterations (mean), or ln(bits per raw bit) averaged over the prefixes 1..T, the "
                   "scale and prefixes of --log-distortion (log; LAMBDA is then the slope d ln D / d ln R traded)")
    p.add_argument("--mix-alpha", type=float, default=0.84, help="--loss mix: weight of 1 - MS-SSIM (the rest: L1)")
    p.add_argument("--decoder-hidden-kernel", type=int, choices=[1, 3], default=3,
                   help="hidden-state kernel of the decoder's two full-resolution cells (1: a cheaper decoder)")
    p.add_argument("--decoder-hidden", type=int, nargs=4, metavar="C",
                   help="hidden channels of the decoder's four cells (default: 512 512 256 128 times --width)")
    p.add_argument("--encoder-hidden", type=int, nargs=3, metavar="C",
                   help="hidden channels of the encoder's three cells (default: 256 512 512 times --width)")
    p.add_argument("--init", metavar="WEIGHTS", help="start from a codec weights file (name or path); 3x3 hidden "
                   "kernels become their centre taps where the model has 1x1 ones; cells with fewer "
                   "--encoder-hidden / --decoder-hidden channels keep the channels their next layer reads most, cells "
                   "with more get new channels that nothing reads yet (the same function until training uses them)")
    p.add_argument("--adaptive-fraction", type=float, default=0.0,
                   help="fraction of the crops whose 32x32 tiles stop at random iterations, as in the encoder's "
                        "spatially adaptive mode (the decoder learns zero bits next to live ones)")
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
    p.add_argument("--name", default="lstm-w25", help="model name recorded in the exported weights")
    p.add_argument("--export-only", action="store_true", help="export OUT/last.pt (its EMA weights if any) to --export and exit")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.export_only:
        return export_checkpoint(Path(args.out) / "last.pt", args.export, args.name)
    if args.crop % 16:
        sys.exit("error: --crop must be a multiple of 16")
    if args.threads:
        torch.set_num_threads(args.threads)
    train_files, val_files = data.split_holdout(data.list_images(args.data))
    runtime.log(f"{len(train_files)} training images, {len(val_files)} held back for validation")
    images = [data.load_rgb(f) for f in train_files]
    batches = data.RandomCrops(images, args.crop, args.batch, seed=args.seed, hard=args.hard)
    val = [_center_crop(data.load_rgb(f), 256) for f in val_files[:8]]

    runtime.seed_everything(args.seed)  # before the model is built: its initial weights come from the seed
    config = CodecConfig(width=args.width, cell=args.cell, iterations=args.iterations, additive=not args.one_shot,
                         decoder_hidden_kernel=args.decoder_hidden_kernel, decoder_hidden=tuple(args.decoder_hidden or ()),
                         encoder_hidden=tuple(args.encoder_hidden or ()), priming=args.priming,
                         residual_gain=args.residual_gain)
    model = RecurrentCodec(config)
    if args.init:
        try:
            init_from(model, args.init)
        except (ValueError, FileNotFoundError) as e:  # unknown weights, or a model of another shape
            sys.exit(f"error: --init {args.init}: {e}")
    model.binarizer.stochastic = not args.sign_bits
    if args.rate_weight:
        model = RateTrained(model)
    short_until = int(args.steps * args.short_fraction) if args.short_iterations else 0

    def batch_fn(step: int):  # step counts over all ranks; the unroll length travels with the batch
        t = args.short_iterations if step // _world() < short_until else args.iterations
        return batches(step), t

    distortion = losses.distortion(args.loss, args.mix_alpha)

    def loss_with_t(net, batch):
        x, t = batch
        stops = random_stops(x, int(t), args.adaptive_fraction) if args.adaptive_fraction else None
        if not args.rate_weight:
            return losses.over_iterations(distortion, x, net(x, int(t), stops), log=args.log_distortion)
        x_hats, (bits, count) = net(x, int(t), stops)
        loss, logged = losses.over_iterations(distortion, x, x_hats, log=args.log_distortion)
        rate = losses.rate_term(bits, count, args.rate_form)
        return loss + args.rate_weight * rate, {**logged, "bits_per_bit": losses.rate_term(bits, count).detach()}

    def evaluate(net, step: int) -> dict:
        return validate(net, val, args.iterations)

    fit_cfg = runtime.FitConfig(
        out_dir=args.out, steps=args.steps, lr=args.lr, warmup=args.warmup, schedule=args.schedule,
        min_lr_ratio=args.min_lr_ratio, clip=args.clip, ema=args.ema, seed=args.seed, device=args.device,
        compile=args.compile, amp=not args.no_amp, cpu_amp=args.cpu_amp, eval_every=args.eval_every, log_every=args.log_every, checkpoint_every_s=args.checkpoint_every,
        time_limit_s=args.time_limit, extra=vars(args),
    )
    result = runtime.fit(model, batch_fn, loss_with_t, fit_cfg, evaluate=evaluate if val else None,
                         meta={"codec_config": config.to_dict()})
    if args.export and result.finished and os.environ.get("RANK", "0") == "0":
        fp = export_codec(codec_of(result.model).cpu(), args.export, args.name,
                          meta={"steps": result.step, "train": {k: v for k, v in vars(args).items() if k != "export"}})
        runtime.log(f"exported {args.export} (fingerprint {fp.hex()})")
    return 0


def export_checkpoint(ckpt_path: Path, out: str | None, name: str) -> int:
    if not out:
        sys.exit("error: --export-only needs --export PATH")
    ck = runtime.load_checkpoint(ckpt_path)
    model = RecurrentCodec(CodecConfig.from_dict(ck["meta"]["codec_config"]))
    state = ck["ema"] if ck.get("ema") is not None else ck["model"]
    if any(key.startswith("codec.") for key in state):  # a --rate-weight run: its codec without the rate model
        state = {key[len("codec."):]: v for key, v in state.items() if key.startswith("codec.")}
    model.load_state_dict(state)
    train = {k: v for k, v in ck["fit"]["extra"].items() if k not in ("export", "export_only")}
    fp = export_codec(model, out, name, meta={"steps": ck["step"], "elapsed_s": ck["elapsed"], "train": train})
    runtime.log(f"exported {out} from step {ck['step']} (fingerprint {fp.hex()})")
    return 0


class RateTrained(torch.nn.Module):
    """The codec and the rate model that --rate-weight trains beside it (checkpoint keys codec.* and rate.*)."""

    def __init__(self, codec: RecurrentCodec):
        super().__init__()
        self.codec, self.rate = codec, losses.BitRate(codec.config.bits)

    def forward(self, x: torch.Tensor, iterations: int, stops: torch.Tensor | None = None
                ) -> tuple[list[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """x̂_t for t = 1..iterations, and each of b_1..b_T's modelled bits and raw bits under the rate model."""
        x_hats, bits = self.codec(x, iterations, stops, with_bits=True)
        return x_hats, self.rate.per_iteration(bits)


def codec_of(model: torch.nn.Module) -> RecurrentCodec:
    return model.codec if isinstance(model, RateTrained) else model


def init_from(model: RecurrentCodec, weights: str) -> None:
    """Copy a codec's weights into `model`; a k x k kernel where `model` has a 1 x 1 one gives its centre tap,
    and cells that are narrower or wider in `model` are resized by resize_cells."""
    target = model.state_dict()
    widths = [target[cell + "conv_h.weight"].shape[1] for cell, _, _ in CELL_READERS]
    source = load_codec(weights).model.state_dict()
    for key, value in source.items():
        if value.dim() == 4 and value.shape[2:] != target[key].shape[2:] == (1, 1):
            k = value.shape[2] // 2
            source[key] = value[:, :, k:k + 1, k:k + 1]
    for key, value in resize_cells(source, widths, target).items():
        if key not in target:
            raise ValueError(f"its {key} has no place in this model" + (" (add --residual-gain)" if key == "log_gain" else ""))
        if value.shape != target[key].shape:
            raise ValueError(f"its {key} has shape {tuple(value.shape)}, this model's {tuple(target[key].shape)} "
                             "(a different --iterations, --width or --cell?)")
        target[key] = value.float()
    model.load_state_dict(target)
    runtime.log(f"initialised from {weights}")


# Each recurrent cell, the weight that reads its hidden state, and how many hidden channels make one
# input channel of that reader (4 in the decoder, where depth-to-space follows every cell).
CELL_READERS = [
    ("encoder.rnns.0.", "encoder.rnns.1.conv_x.weight", 1),
    ("encoder.rnns.1.", "encoder.rnns.2.conv_x.weight", 1),
    ("encoder.rnns.2.", "binarizer.conv.weight", 1),
    ("decoder.rnns.0.", "decoder.rnns.1.conv_x.weight", 4),
    ("decoder.rnns.1.", "decoder.rnns.2.conv_x.weight", 4),
    ("decoder.rnns.2.", "decoder.rnns.3.conv_x.weight", 4),
    ("decoder.rnns.3.", "decoder.conv_out.weight", 4),
]


def resize_cells(sd: dict, widths: list[int], fresh: dict) -> dict:
    """Resize the recurrent cells of a codec state dict to `widths` hidden channels (CELL_READERS order).

    Narrower: a cell keeps the groups of hidden channels that its reader reads most strongly (largest sum
    of squared weights), with their gate rows and recurrent weights, and the reader keeps the matching
    input channels. Wider: the new hidden channels are appended with the gate rows of `fresh` (a newly
    initialised state dict of the target shape); the old channels' recurrent weights and the reader get
    zero columns for them, so the resized network computes exactly what the original did until training
    gives the new channels a use."""
    sd = dict(sd)
    for (cell, reader, group), new in zip(CELL_READERS, widths):
        old = sd[cell + "conv_h.weight"].shape[1]
        if new == old:
            continue
        gates = sd[cell + "conv_x.weight"].shape[0] // old
        if new > old:  # (new - old) is a multiple of group: CodecConfig keeps decoder cells multiples of 4
            sd[cell + "conv_h.weight"] = _zero_columns(sd[cell + "conv_h.weight"], new - old)
            for key in ("conv_h.weight", "conv_x.weight", "conv_x.bias"):
                old_rows, new_rows = sd[cell + key].chunk(gates), fresh[cell + key].to(sd[cell + key].dtype).chunk(gates)
                sd[cell + key] = torch.cat([torch.cat([o, n[old:]]) for o, n in zip(old_rows, new_rows)])
            sd[reader] = _zero_columns(sd[reader], (new - old) // group)
            continue
        strength = sd[reader].float().pow(2).sum(dim=(0, 2, 3))  # one value per input channel of the reader
        inputs = strength.topk(new // group).indices.sort().values
        keep = (inputs[:, None] * group + torch.arange(group)).flatten()
        rows = torch.cat([g * old + keep for g in range(gates)])
        sd[cell + "conv_x.weight"] = sd[cell + "conv_x.weight"][rows]
        sd[cell + "conv_x.bias"] = sd[cell + "conv_x.bias"][rows]
        sd[cell + "conv_h.weight"] = sd[cell + "conv_h.weight"][rows][:, keep]
        sd[reader] = sd[reader][:, inputs]
    return sd


def _zero_columns(w: torch.Tensor, n: int) -> torch.Tensor:
    """A convolution weight with n more input channels, all of whose weights are zero."""
    return torch.cat([w, w.new_zeros(w.shape[0], n, *w.shape[2:])], 1)


def random_stops(x: torch.Tensor, iterations: int, fraction: float, tile: int = 2) -> torch.Tensor:
    """Per-block iteration counts (N x 1 x H/16 x W/16): in `fraction` of the crops every tile of
    tile x tile blocks stops after a uniform random 1..iterations, in the others every block runs them all."""
    n, _, h, w = x.shape
    th, tw = -(-h // (16 * tile)), -(-w // (16 * tile))
    stops = torch.randint(1, iterations + 1, (n, 1, th, tw), device=x.device)
    stops = torch.where(torch.rand(n, 1, 1, 1, device=x.device) < fraction, stops, iterations)
    return stops.repeat_interleave(tile, 2).repeat_interleave(tile, 3)[:, :, :h // 16, :w // 16]


def validate(net, images: list[torch.Tensor], iterations: int) -> dict:
    """MS-SSIM of held-back 256x256 crops at 1, 2, 4, 8 and 16 iterations (with --rate-weight, also the rate
    model's bits per raw bit over all the iterations)."""
    codec = codec_of(net)
    x = torch.stack([data.to_unit(im) for im in images]).to(next(net.parameters()).device)
    report, bits = {}, []
    for t, (b, x_hat) in enumerate(codec.iterate(x, iterations), start=1):
        bits.append(b)
        if t in (1, 2, 4, 8, 16):
            rec = ((x_hat.clamp(-0.5, 0.5) + 0.5) * 255).round()
            report[f"msssim_i{t}"] = metrics.ms_ssim(rec.cpu(), ((x + 0.5) * 255).round().cpu())
            if codec.config.residual_gain:
                report[f"gain_i{t}"] = float(codec.gain(t - 1))
    if isinstance(net, RateTrained):
        report["bits_per_bit"] = float(net.rate(bits))
    return report


def _center_crop(im: torch.Tensor, size: int) -> torch.Tensor:
    h, w = im.shape[1:]
    y, x = (h - size) // 2, (w - size) // 2
    return im[:, y:y + size, x:x + size]


def _world() -> int:
    return int(os.environ.get("WORLD_SIZE", 1))


if __name__ == "__main__":
    raise SystemExit(main())

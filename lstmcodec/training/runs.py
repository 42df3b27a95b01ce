"""What the training scripts share besides the loop (runtime.fit): where a run's network comes from, and how a
run's checkpoint becomes a weights file in the shipped format.

The network's configuration is inherited: a run that resumes keeps its checkpoint's network, a run started with
--init takes the configuration stored in that weights file, and a command-line shape option only overrides what
it names. An override that changes a tensor's shape is a growth or shrink, which must be asked for (`resize`);
anything else that does not fit is one error line (InitError), never a traceback.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path

import torch

from lstmcodec.training import data, losses, runtime
from lstmcodec import metrics
from lstmcodec.models import weights, zoo
from lstmcodec.coding.codec import Codec
from lstmcodec.errors import CodecError
from lstmcodec.nets.config import CodecConfig
from lstmcodec.nets.resize import centre_taps, resize_cells


class InitError(ValueError):
    """A network that cannot start from the given weights or checkpoint, with the reason in one line."""


# ----------------------------------------------------------------------------- codec runs


def validate_codec(codec: Codec, images: list[torch.Tensor], iterations: int,
                   criterion: losses.RateDistortionLoss | None = None) -> dict:
    """MS-SSIM and PSNR of held-back crops (3 x H x W uint8 each, all one size) at 1, 2, 4, 8 and 16 iterations and at
    the last, the residual gains there, and with a criterion that has a rate model its bits per raw bit over all the
    iterations."""
    x = torch.stack([data.to_unit(im) for im in images]).to(next(codec.parameters()).device)
    report, bits = {}, []
    for t, (b, x_hat) in enumerate(codec.iterate(x, iterations), start=1):
        bits.append(b)
        if t in (1, 2, 4, 8, 16) or t == iterations:
            rec, ref = (((v + 0.5) * 255).round().cpu() for v in (x_hat.clamp(-0.5, 0.5), x))
            report[f"msssim_i{t}"] = metrics.ms_ssim(rec, ref)
            report[f"psnr_i{t}"] = metrics.psnr(rec, ref)
            if codec.config.residual_gain:
                report[f"gain_i{t}"] = float(codec.gain(t - 1))
    if criterion is not None and criterion.rate is not None:
        report["bits_per_bit"] = float(criterion.rate(bits))
    return report


def checkpoint_config(out_dir: str | os.PathLike, key: str = "codec_config") -> dict | None:
    """The network configuration a run folder's checkpoint (OUT/last.pt) was started with, or None without one."""
    path = Path(out_dir) / "last.pt"
    if not path.exists():
        return None
    return runtime.load_checkpoint(path)["meta"].get(key)


SHAPE_FIELDS = ("width", "decoder_hidden", "encoder_hidden", "decoder_hidden_kernel")  # what --resize may change


def codec_config(overrides: dict, init: Codec | None = None, resumed: dict | None = None,
                 resize: bool = False) -> CodecConfig:
    """The configuration of a codec run: a resumed run's, else the --init codec's, else the defaults; `overrides`
    (the shape options the command line named) replace what they name. Raises InitError where they do not fit."""
    try:
        if resumed is not None:
            config = CodecConfig.from_dict(resumed)
            changed = {k: v for k, v in overrides.items() if getattr(config, k) != v}
            if changed:
                raise InitError(f"the run was started with {_describe(config, changed)}; a resumed run keeps its "
                                "network (start a new run folder with --init to change it)")
            return config
        if init is None:
            return dataclasses.replace(CodecConfig(), **overrides)
        config = dataclasses.replace(init.config, **overrides)
    except (TypeError, ValueError) as e:
        raise InitError(str(e)) from None
    base = init.config
    for key in ("cell", "bits"):
        if getattr(config, key) != getattr(base, key):
            raise InitError(f"{key} {getattr(base, key)} cannot become {getattr(config, key)} in fine-tuning")
    if base.residual_gain and not config.residual_gain:
        raise InitError("it has learned residual gains; fine-tuning keeps them (drop --no-residual-gain)")
    reshaped = [k for k in SHAPE_FIELDS if getattr(config, k) != getattr(base, k)]
    if reshaped and not resize:
        raise InitError(f"{_describe(config, {k: getattr(config, k) for k in reshaped}, base)} changes the network's "
                        "shape; add --resize to grow or shrink it")
    return config


def _describe(config: CodecConfig, fields: dict, base: CodecConfig | None = None) -> str:
    def show(v):
        return " ".join(map(str, v)) if isinstance(v, tuple) else str(v)
    parts = []
    for k, v in fields.items():
        was = f" (it has {show(getattr(base, k))})" if base is not None else f" {show(getattr(config, k))}"
        parts.append(f"--{k.replace('_', '-')}" + (f" {show(v)}{was}" if base is not None else was))
    return ", ".join(parts)


def init_codec(config: CodecConfig, source: Codec) -> Codec:
    """A codec of `config` that starts from `source`'s weights: its tensors copied; a k x k kernel where `config` has
    a 1 x 1 one gives its centre tap; cells narrower or wider are resized (nets.resize); learned residual gains are
    extended with their last value (or cut) to `config.iterations`, and start at 1 where `source` had none; a block of
    later iterations (CodecConfig.blocks) that `source` lacks starts as a copy of its last network."""
    model = Codec(config)
    target = model.state_dict()
    sd = dict(source.state_dict())
    have = len(source.config.blocks)
    for key in target:
        if key.startswith("later.") and key not in sd:   # later.K.<part>: a copy of source's last block
            part = key.split(".", 2)[2]
            sd[key] = sd[f"later.{have - 1}.{part}" if have else part]
    sd = centre_taps(sd, target)
    sd = resize_cells(sd, target)
    if config.residual_gain:
        gains = sd.get("log_gain", torch.zeros(1))
        n = config.iterations
        sd["log_gain"] = torch.cat([gains, gains[-1:].expand(max(0, n - len(gains)))])[:n]
    for key, value in sd.items():
        if key not in target or value.shape != target[key].shape:
            raise InitError(f"its {key} does not fit this network")
        target[key] = value.float()
    model.load_state_dict(target)
    return model


def load_init(name_or_path: str) -> Codec:
    """The codec an --init names (a bundled name or a weights file), in float32 on the CPU."""
    try:
        return copy.deepcopy(zoo.load_codec(name_or_path, precision="fp32")).float()
    except CodecError as e:
        raise InitError(str(e)) from None


def default_name(out_dir: str | os.PathLike, task: str) -> str:
    """The name a run's export gets unless told otherwise: its folder's, never a bundled or retired model's."""
    name = Path(out_dir).resolve().name or "run"
    taken = set(zoo.registry().get(task, {})) | set(zoo.retired().get(task, {})) | {"default"}
    return f"run-{name}" if name in taken else name


def export_codec(codec: Codec, path: str | os.PathLike, name: str, meta: dict | None = None, **entropy) -> bytes:
    """Write a codec weights file (fp16, with the entropy table, mixer and linear tail when given); returns its
    fingerprint."""
    blob = weights.codec_blob(codec, name, codec.config.to_dict(), meta, **entropy)
    weights.save(blob, path)
    return weights.codec_fingerprint(blob)


# ----------------------------------------------------------------------------- what every training script does first


def script_start(task: str, parser, argv, main, parse=None):
    """The part of a training script's main() that is the same in all three: parse the arguments (with `parse`,
    else the parser's own), then --recipe runs a recipe (recipes.py) and --export-only exports the run's
    checkpoint. Returns (args, the exit status of either, or None to train). Sets args.name to the run's default
    name (default_name) when none was given, and torch's threads to --threads."""
    from lstmcodec.training import recipes

    args = parse(parser, argv) if parse else parser.parse_args(argv)
    if args.recipe:
        return args, recipes.run_file(task, args, parser, main)
    args.name = args.name or default_name(args.out, task)
    if args.export_only:
        if not args.export:
            parser.exit(1, "error: --export-only needs --export PATH\n")
        runtime.log(export_checkpoint(Path(args.out) / "last.pt", args.export, args.name, task))
        return args, 0
    if args.threads:
        torch.set_num_threads(args.threads)
    try:  # an absent or unknown device is one line, before any data is read
        runtime.select_device(args.device)
    except (ValueError, RuntimeError) as e:
        parser.exit(1, f"error: --device {args.device}: {e}\n")
    return args, None


def evaluated_net(task: str, name_or_path: str) -> "zoo.LoadedNet":
    """The denoiser or classifier a script's --evaluate names; a bad name or file ends the script with one line."""
    try:
        return zoo.load_net(task, name_or_path)
    except CodecError as e:
        raise SystemExit(f"error: {e}") from None


# ----------------------------------------------------------------------------- checkpoints of every task


def export_checkpoint(ckpt_path: str | os.PathLike, path: str | os.PathLike, name: str, task: str) -> str:
    """Export a run's checkpoint (its EMA weights when it has them) as a weights file of `task` (a codec run's rate
    model is its criterion's, not the codec's). Returns a line to log."""
    from lstmcodec import nets

    ck = runtime.upgrade_checkpoint(runtime.load_checkpoint(ckpt_path))
    state = ck["ema"] if ck.get("ema") is not None else ck["model"]
    train = {k: v for k, v in ck["fit"]["extra"].items() if k not in ("export", "export_only")}
    meta = {"steps": ck["step"], "elapsed_s": ck["elapsed"], "train": train}
    if task == "codec":
        codec = Codec(CodecConfig.from_dict(ck["meta"]["codec_config"]))
        codec.load_state_dict(state)
        fp = export_codec(codec, path, name, meta)
        return f"exported {path} from step {ck['step']} (fingerprint {fp.hex()})"
    arch, config = ck["meta"].get("arch") or ck["fit"]["extra"]["arch"], ck["meta"]["config"]
    model = nets.build(task, arch, config)
    model.load_state_dict(state)
    weights.save(weights.net_blob(model, name, task, arch, config, meta), path)
    return f"exported {path} from step {ck['step']}"

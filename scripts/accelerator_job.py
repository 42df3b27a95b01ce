#!/usr/bin/env python3
"""One command that turns minutes of one accelerator into better weights (docs/training.md says how to prepare
the bundle it runs from and how its output becomes a bundled model).

    python3 -m scripts.accelerator_job --task codec --recipe recipes/fast.toml --data bundle/data \\
        --wheels bundle/wheels --minutes 8 --out $OUT --device cuda

It fine-tunes the recipe's bundled model (or, with --from-scratch, a new network of the recipe's first stage) with
the recipe's [finetune] options for --minutes of wall time on one device, through the same training script and
loop as every other run: bf16 autocast and torch.compile on CUDA, the training set decoded into device memory once
and random crops cut there, the learning-rate schedule laid over the time (so the run ends on its planned cosine
whatever its step rate), a checkpoint every minute. The codec's weights keep the bundled model's entropy table and
mixer (--tables bundled, the default: learning them again from the recipe's [tables] takes longer than the
training on a machine whose accelerator time is counted, and is done afterwards on any CPU with
scripts/learn_entropy_tables.py; --tables learn does it in the job). --out receives only:

    NAME.pt          the weights in the shipped format (fp16, one-byte table + mixer), <= 16 MiB
    log.json         steps, seconds, step rate, losses, held-back validation before and after (and with
                     --throughput DIR, the bundled model's images per second at -i 16 on DIR, batched)
    checkpoint.pt    what --resume needs (model, EMA, optimizer, in half precision), split into parts <= 15 MiB

On a machine that has torch, numpy and Pillow but not constriction and pytorch-msssim, --wheels DIR installs them
from wheels brought along (nothing from the network), into a temporary folder, and the job restarts itself there.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEEDED = ("constriction", "pytorch_msssim", "click")   # imported by lstmcodec, not on every accelerator image
# Per task: training script, device -> (batch, crop). On a large GPU the batch and crop are what fill it: 32 crops of
# 192 px (18x the pixels of a CPU step of 16 x 64 px; 192 px is large enough for MS-SSIM's five scales with the
# standard 11-px window, which 64 px crops cannot give) through 16 unrolled iterations; the denoiser, 64 x 128 px.
TASKS = {"codec": ("train_codec.py", {"cuda": (32, 192), "cpu": (2, 32)}),
         "denoise": ("train_denoiser.py", {"cuda": (64, 128), "cpu": (2, 32)})}
CHECKPOINT_PART = 15 << 20


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=sorted(TASKS), required=True)
    p.add_argument("--recipe", required=True, help="the recipe of the model to improve (recipes/*.toml)")
    p.add_argument("--data", required=True, help="the training images (a folder)")
    p.add_argument("--minutes", type=float, required=True, help="wall time of training (the tables and exports follow)")
    p.add_argument("--out", required=True, help="where the weights, log.json and checkpoint go (nothing else)")
    p.add_argument("--resume", metavar="DIR", help="continue a job from its --out folder (its checkpoint)")
    p.add_argument("--device", default="cuda", help="cuda or cpu (the CPU rehearsal)")
    p.add_argument("--wheels", metavar="DIR", help="install missing constriction / pytorch-msssim / click from wheels here")
    p.add_argument("--from-scratch", action="store_true", help="train the recipe's first stage's network from nothing")
    p.add_argument("--batch", type=int, help="crops per step (default: by device, see TASKS)")
    p.add_argument("--crop", type=int, help="crop side in pixels (default: by device)")
    p.add_argument("--no-compile", action="store_true", help="no torch.compile on CUDA")
    p.add_argument("--tables", choices=["bundled", "learn"], default="bundled",
                   help="codec: keep the bundled model's entropy table and mixer (relearn them later, on a CPU) or "
                   "learn them again in the job (the recipe's [tables]; minutes to hours)")
    p.add_argument("--table-images", type=int, help="override the recipe's [tables] images")
    p.add_argument("--table-k", type=int, help="override the recipe's [tables] k")
    p.add_argument("--mixer-images", type=int, help="override the recipe's [tables] mixer-images")
    p.add_argument("--throughput", metavar="DIR", help="codec: after training, also the bundled model's images per "
                   "second at -i 16 on the images of DIR (encode and decode, batched; e.g. Kodak images)")
    p.add_argument("--work", help="scratch folder for the run's full checkpoints (default: a temporary folder)")
    return p.parse_args(argv)


def prelude(args: argparse.Namespace, argv: list[str]) -> None:
    """Install what lstmcodec needs from --wheels and restart with it (and the checkout) on PYTHONPATH."""
    missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
    if not missing and importlib.util.find_spec("lstmcodec") is not None and _importable("scripts.train_codec"):
        return
    if missing and not args.wheels:
        sys.exit(f"error: {', '.join(missing)} not installed; bring their wheels and pass --wheels DIR")
    site = Path(tempfile.mkdtemp(prefix="lstmcodec-site-"))
    if missing:
        wheels = sorted(str(w) for w in Path(args.wheels).glob("*.whl"))
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--target", str(site), *wheels], check=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    os.execve(sys.executable, [sys.executable, "-m", "scripts.accelerator_job", *argv], env)


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    prelude(args, argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    if args.work:
        return job(args, Path(args.work))
    with tempfile.TemporaryDirectory(prefix="lstmcodec-job-") as work:  # removed at the end
        return job(args, Path(work))


def job(args: argparse.Namespace, work: Path) -> int:
    from lstmcodec.training import recipes, runtime

    t_start = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run_dir = work / "run"
    recipe = recipes.load(args.recipe)
    if recipe.task != args.task:
        sys.exit(f"error: {args.recipe} is a {recipe.task} recipe, not a {args.task} one")
    device = runtime.select_device(args.device)
    script, sizes = TASKS[args.task]
    batch, crop = sizes["cuda" if device.type == "cuda" else "cpu"]
    elapsed_before = 0.0
    if args.resume:
        elapsed_before = restore_checkpoint(Path(args.resume), run_dir / "last.pt")
    options = dict(recipe.finetune.get("options", {}))
    if args.from_scratch:
        options = {**recipe.stages[0].options, **{k: v for k, v in options.items() if k not in recipe.stages[0].options}}
    options.update({"batch": args.batch or batch, "crop": args.crop or crop, "steps": 10 ** 9, "stop-at": 0,
                    "schedule-over": "time", "time-limit": elapsed_before + 60 * args.minutes, "checkpoint-every": 60,
                    "eval-every": 0, "eval-at-start": True, "device": str(device), "threads": 0, "cpu-amp": False,
                    "compile": device.type == "cuda" and not args.no_compile})
    if args.task == "codec":
        options["log-every"] = 50 if device.type == "cuda" else 1
    raw = work / "raw.pt"
    data = [args.data] if args.task == "codec" else ["folder", args.data]
    argv = [*data, "--out", str(run_dir), *recipes.options_argv(options), "--export", str(raw), "--name", recipe.name]
    if not args.from_scratch and not (run_dir / "last.pt").exists():
        argv += ["--init", recipe.name]
    runtime.log(f"accelerator job: {script} " + " ".join(argv))
    trainer = importlib.import_module(f"scripts.{script[:-3]}")
    rc = trainer.main(argv)
    if rc or not raw.exists():
        sys.exit(f"error: training ended without weights (exit status {rc})")
    final = out / f"{recipe.name}.pt"
    tables = {}
    if args.task == "codec" and args.tables == "bundled":
        keep_bundled_tables(raw, recipe.name, final)
        tables = {"kept": f"the bundled {recipe.name}'s table and mixer; relearn with scripts/learn_entropy_tables.py "
                          f"and the recipe's [tables]: {recipe.tables}"}
    elif args.task == "codec":
        tables = {**recipe.tables, **{k: v for k, v in (("images", args.table_images), ("k", args.table_k),
                                                         ("mixer-images", args.mixer_images)) if v is not None}}
        tables.pop("threads", None)
        learn = importlib.import_module("scripts.learn_entropy_tables")
        if learn.main([args.data, "--model", str(raw), "--out", str(final), "--name", recipe.name,
                       *recipes.options_argv(tables)]):
            sys.exit("error: learning the entropy tables failed")
    else:
        shutil.copy(raw, final)
    if args.task == "codec" and recipe.tail:   # a new network needs its own tail, fitted on any CPU in minutes
        tables["tail"] = f"none: fit it with scripts/fit_tail.py and the recipe's [tail]: {recipe.tail}"
    save_checkpoint(run_dir / "last.pt", out)
    log = report(run_dir, args, options, tables, final, time.time() - t_start)
    if args.throughput and args.task == "codec":   # after the weights are safe: a failure here loses nothing
        try:
            from scripts.bench_speed import images_per_second
            log["throughput"] = images_per_second(recipe.name, args.throughput, str(device))
        except (Exception, SystemExit) as e:   # reported in the log; the job's weights stand
            log["throughput"] = f"failed: {type(e).__name__}: {e}"
        runtime.log(f"accelerator job: {log['throughput']}")
    (out / "log.json").write_text(json.dumps(log, indent=1) + "\n")
    runtime.log(f"accelerator job: wrote {final}, {out / 'log.json'} and the checkpoint to {out}")
    return 0


def keep_bundled_tables(raw: Path, name: str, final: Path) -> None:
    """The trained network with the bundled model's entropy table and mixer: a file in the shipped format that
    decodes what it encodes (any table does; a relearned one saves a few per cent of the bytes)."""
    from lstmcodec.training import runs as training
    from lstmcodec.models import zoo

    bundled, trained = zoo.load_codec(name), zoo.load_codec(str(raw))
    training.export_codec(trained, final, name, trained.meta, entropy_prior=bundled.prior, entropy_mixer=bundled.mixer)


def report(run_dir: Path, args, options: dict, tables: dict, final: Path, wall_s: float) -> dict:
    """What log.json holds: the run's settings, its steps and seconds, its losses and the held-back validation
    before and after (the evaluations of log.csv at the first and the last step)."""
    import csv

    rows = list(csv.DictReader((run_dir / "log.csv").read_text().splitlines()))
    evals = [{k[4:]: float(v) for k, v in r.items() if k.startswith("val_") and v} | {"step": int(r["step"])}
             for r in rows if any(k.startswith("val_") and v for k, v in r.items())]
    steps = [r for r in rows if r.get("loss")]
    last = steps[-1] if steps else {}
    train_s = float(last.get("elapsed_s", 0) or 0)
    return {
        "task": args.task, "recipe": str(args.recipe), "device": options["device"], "minutes": args.minutes,
        "batch": options["batch"], "crop": options["crop"], "options": options, "tables": tables,
        "steps": int(last.get("step", 0) or 0), "training_s": train_s, "wall_s": round(wall_s, 1),
        "steps_per_s": int(last.get("step", 0) or 0) / train_s if train_s else 0.0,
        "loss": [[int(r["step"]), float(r["loss"])] for r in steps],
        "validation_before": evals[0] if evals and evals[0]["step"] == 0 else {},   # none when resumed
        "validation_after": evals[-1] if evals and evals[-1]["step"] > 0 else {},
        "weights": final.name, "weights_bytes": final.stat().st_size,
    }


def save_checkpoint(path: Path, out: Path) -> None:
    """The run's checkpoint in half precision (floating tensors), in parts of at most CHECKPOINT_PART bytes:
    checkpoint.pt (everything but the tensors' data when it does not fit) and checkpoint-1.pt, ... ."""
    import torch

    ck = torch.load(path, map_location="cpu", weights_only=False)
    tensors, meta = {}, {}

    def strip(obj, key):
        if isinstance(obj, torch.Tensor):  # scalars (Adam's step counts) stay exact
            tensors[key] = obj.half() if obj.dtype == torch.float32 and obj.numel() > 1 else obj
            return {"__tensor__": key, "dtype": str(obj.dtype)}
        if isinstance(obj, dict):
            return {k: strip(v, f"{key}/{k}") for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(strip(v, f"{key}/{i}") for i, v in enumerate(obj))
        return obj

    meta = strip(ck, "")
    parts, current, size = [], {}, 0
    for key, t in tensors.items():
        n = t.numel() * t.element_size()
        if current and size + n > CHECKPOINT_PART:
            parts.append(current)
            current, size = {}, 0
        current[key], size = t, size + n
    parts.append(current)
    for old in out.glob("checkpoint*.pt"):
        old.unlink()
    for i, part in enumerate(parts):
        torch.save({"skeleton": meta if i == 0 else None, "parts": len(parts), "tensors": part},
                   out / ("checkpoint.pt" if i == 0 else f"checkpoint-{i}.pt"))


def restore_checkpoint(folder: Path, path: Path) -> float:
    """Rebuild a run's full checkpoint from a job's saved parts; returns the training seconds it had run."""
    import torch

    first = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=False)
    tensors = dict(first["tensors"])
    for i in range(1, first["parts"]):
        tensors.update(torch.load(folder / f"checkpoint-{i}.pt", map_location="cpu", weights_only=False)["tensors"])

    def fill(obj):
        if isinstance(obj, dict) and "__tensor__" in obj:
            t = tensors[obj["__tensor__"]]
            return t.to(getattr(torch, obj["dtype"].split(".")[-1]))
        if isinstance(obj, dict):
            return {k: fill(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(fill(v) for v in obj)
        return obj

    ck = fill(first["skeleton"])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ck, path)
    return float(ck.get("elapsed", 0.0))


if __name__ == "__main__":
    raise SystemExit(main())

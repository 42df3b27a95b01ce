#!/usr/bin/env python3
"""The source documents' experiments, one command each: train the recipe, measure, draw the figures.

    python scripts/reproduce.py --list
    python scripts/reproduce.py mnist-cnn-100                 # about a minute
    python scripts/reproduce.py cifar-classifier --full       # the document's whole schedule (300 epochs)

Each experiment is a recipe in recipes/seeds/ run by its training script (the shared runtime; its run folder is
runs/seeds/NAME, resumed when the command is run again). Then this script writes results/seeds/NAME/:
metrics.json (the final numbers beside the document's, the per-epoch curve, the command), loss.png (the curve),
and grid.png (denoisers: clean / noisy / output digits or images) or confusion.png (classifiers).
results/seeds/README.md collects them in one table.
"""
from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "recipes" / "seeds"
RESULTS = ROOT / "results" / "seeds"


@dataclass
class Experiment:
    document: str        # the source document (../shared/seeds/)
    measure: str         # the number compared with the document's: a key of the run's final evaluation
    paper: float | None  # the document's value of it (None: the document gives none)
    paper_note: str      # where the document's number comes from
    curve: str           # the per-epoch key drawn in loss.png
    full_epochs: float | None = None  # --full: the document's schedule, where the recipe measured is shorter
    noise: dict | None = None         # denoisers: the test noise of grid.png (data.Noise fields)


EXPERIMENTS = {
    "mnist-cnn-100": Experiment("001", "epoch_error", 13.07, "epoch error after 10 epochs (49.0 -> 13.07)",
                                "epoch_error"),
    "mnist-denoise-mix-a": Experiment("000", "test_mse", 0.0063, "the stop criterion, an epoch's training MSE",
                                      "test_mse", noise=dict(kind="halves", mean=-5.9, var=35, clip=False)),
    "mnist-denoise-mix-b": Experiment("000", "test_mse", 0.0063, "the stop criterion, an epoch's training MSE",
                                      "test_mse", noise=dict(kind="halves", mean=-20, var=600, clip=False)),
    "mnist-denoise-mix-b-dense": Experiment("000", "test_mse", None, "shown as pictures only", "test_mse",
                                            noise=dict(kind="halves", mean=-20, var=600, clip=False)),
    "mnist-denoise-dense": Experiment("004", "test_bce", None, "shown as pictures only", "test_bce",
                                      noise=dict(kind="gaussian", var=16256.25)),
    "mnist-denoise-pool": Experiment("004", "test_bce", None, "shown as pictures only", "test_bce",
                                     noise=dict(kind="gaussian", var=16256.25)),
    "cifar-autoencoder": Experiment("002", "test_bce", 0.5497, "minimum training-batch BCE (0.574 at the end)",
                                    "test_bce", noise=dict(kind="none")),
    "cifar-autoencoder-cosine": Experiment("002", "test_bce", 0.5497, "minimum training-batch BCE (0.574 at the end)",
                                           "test_bce", noise=dict(kind="none")),
    "cifar-autoencoder-b32": Experiment("002", "test_bce", 0.5497, "minimum training-batch BCE (0.574 at the end)",
                                        "test_bce", full_epochs=100, noise=dict(kind="none")),
    "cifar-classifier": Experiment("003", "test_acc", 0.90, "test accuracy after 300 epochs", "test_acc",
                                   full_epochs=300),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", choices=sorted(EXPERIMENTS))
    p.add_argument("--list", action="store_true", help="the experiments and their recipes")
    p.add_argument("--full", action="store_true", help="the document's whole schedule where the recipe is shorter")
    p.add_argument("--data", help="the data folder or file, in place of the recipe's ../shared/data/...")
    p.add_argument("--threads", type=int, help="CPU threads (the recipe's otherwise)")
    p.add_argument("--figures-only", action="store_true", help="redraw results/seeds/NAME from the finished run")
    p.add_argument("--table", action="store_true", help="rewrite results/seeds/README.md from every metrics.json")
    args = p.parse_args(argv)
    if args.list:
        for name, e in EXPERIMENTS.items():
            print(f"{name:28} document {e.document}  recipes/seeds/{name}.toml")
        return 0
    if args.table:
        write_table()
        return 0
    if not args.name:
        p.error("name an experiment (--list shows them)")
    return reproduce(args.name, args)


def reproduce(name: str, args) -> int:
    from lstmcodec.training import recipes

    exp = EXPERIMENTS[name]
    recipe = recipes.load(RECIPES / f"{name}.toml")
    run = ROOT / "runs" / "seeds" / name
    data = list(recipe.data)
    if args.data:
        data[-1] = args.data
    command = [sys.executable, str(ROOT / "scripts" / recipes.TASK_SCRIPTS[recipe.task]), *(data if args.data else []),
               "--recipe", str(recipe.path), "--out", str(run)]
    if args.full and exp.full_epochs:
        command += ["--epochs", str(exp.full_epochs)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    shown = shlex.join(["python", *[str(Path(c).relative_to(ROOT)) if c.startswith(str(ROOT)) else c
                                    for c in command[1:]]])
    if not args.figures_only:
        t0 = time.time()
        if subprocess.run(command, cwd=ROOT).returncode:
            print(f"error: {name}: the training command failed", file=sys.stderr)
            return 1
        print(f"{name}: trained in {time.time() - t0:.0f} s", file=sys.stderr)
    stage = recipe.stages[-1].name
    rows = read_log(run / stage / "log.csv")
    if not rows:
        print(f"error: {name}: no evaluations in {run / stage / 'log.csv'}", file=sys.stderr)
        return 1
    out = RESULTS / name
    out.mkdir(parents=True, exist_ok=True)
    weights_file = run / f"{recipe.name}.pt"
    final = rows[-1]
    metrics = {
        "experiment": name, "document": exp.document, "command": f"python scripts/reproduce.py {name}",
        "training_command": shown, "weights": str(weights_file.relative_to(ROOT)),
        "measure": exp.measure, "value": final.get(exp.measure), "document_value": exp.paper,
        "document_note": exp.paper_note, "epochs": final.get("epoch"),
        "training_seconds": final.get("elapsed_s"),
        "final": {k: v for k, v in final.items() if k not in ("step", "elapsed_s")},
        "min_logged_training_loss": min_training_loss(run / stage / "log.csv"),
        "curve": [{"epoch": r.get("epoch"), exp.curve: r.get(exp.curve), "elapsed_s": r.get("elapsed_s")}
                  for r in rows],
    }
    draw_curve(rows, exp, name, out / "loss.png")
    if recipe.task == "classify":
        metrics["confusion"] = draw_confusion(weights_file, data, out / "confusion.png")
    else:
        draw_grid(weights_file, data, exp, out / "grid.png")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_table()
    print(f"{name}: {exp.measure} {metrics['value']:.5g} (document: {exp.paper}); wrote {out.relative_to(ROOT)}",
          file=sys.stderr)
    return 0


def read_log(path: Path) -> list[dict]:
    """The evaluation rows of a run's log.csv (val_* columns, without the prefix), as numbers."""
    if not path.exists():
        return []
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            vals = {k[4:]: float(v) for k, v in row.items() if k.startswith("val_") and v not in ("", None)}
            if vals:
                rows.append({"step": float(row["step"]), "elapsed_s": float(row["elapsed_s"]), **vals})
    return rows


def min_training_loss(path: Path) -> float | None:
    """The lowest training-batch loss the run logged (one batch in every log interval): what a document's "minimum
    loss" over its training batches compares with."""
    with open(path, newline="") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f) if r.get("loss") not in ("", None)]
    return min(losses) if losses else None


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_curve(rows: list[dict], exp: Experiment, name: str, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r.get("epoch", r["step"]) for r in rows if exp.curve in r]
    ax.plot(xs, [r[exp.curve] for r in rows if exp.curve in r], marker="o", label=f"lstmcodec: {exp.curve}")
    if exp.paper is not None:
        ax.axhline(exp.paper, color="grey", linestyle="--", label=f"document: {exp.paper} ({exp.paper_note})")
    if name == "mnist-cnn-100":  # the document prints its whole curve
        doc = [49.01583926, 46.82598887, 46.34869897, 45.91090231, 43.5831155, 37.59395628, 24.85556116,
               19.70024379, 16.36753937, 13.0701178]
        ax.plot(range(1, 11), doc, marker="s", color="grey", label="document's epoch errors")
    ax.set_xlabel("epoch")
    ax.set_ylabel(exp.curve)
    ax.set_title(name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _load(task: str, weights_file: Path):
    from lstmcodec.models import zoo

    return zoo.load_net(task, str(weights_file))


def draw_grid(weights_file: Path, data_args: list[str], exp: Experiment, path: Path, n: int = 8) -> None:
    """Clean, noisy and denoised test images: the first n/2 and the last n/2 of the test split (the two halves of
    the MNIST protocol), with the test noise of the run (fixed seed)."""
    from lstmcodec.training import data

    net = _load("denoise", weights_file)
    load = data.load_mnist if data_args[0] == "mnist" else data.load_cifar10
    test = load(data_args[1], "test")
    clean = test.images.float().div(255)
    noisy = data.Noise(**exp.noise)(clean, torch.Generator().manual_seed(1234))
    pick = list(range(n // 2)) + list(range(len(clean) - n // 2, len(clean)))
    with torch.no_grad():
        out = net.model(noisy[pick]).float().clamp(0, 1)
    rows = [clean[pick], noisy[pick].clamp(0, 1), out]
    plt = _plt()
    fig, axes = plt.subplots(3, n, figsize=(n * 1.1, 3.6))
    labels = ("clean", "input (no noise)" if exp.noise.get("kind") == "none" else "noisy", "output")
    for r, (images, label) in enumerate(zip(rows, labels)):
        for c in range(n):
            im = images[c].permute(1, 2, 0).numpy()
            axes[r, c].imshow(im[..., 0] if im.shape[-1] == 1 else im, cmap="gray", vmin=0, vmax=1)
            axes[r, c].axis("off")
        axes[r, 0].set_title(label, fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_confusion(weights_file: Path, data_args: list[str], path: Path) -> list[list[int]]:
    from lstmcodec.training import data
    from lstmcodec.nets import classify

    net = _load("classify", weights_file)
    test = data.load_mnist(data_args[1], "test") if data_args[0] == "mnist" else data.load_cifar10(data_args[1], "test")
    pred = classify.predict(net.model, test.images, net.config)
    k = len(test.classes)
    matrix = torch.zeros(k, k, dtype=torch.long)
    matrix.index_put_((test.labels, pred), torch.ones_like(pred), accumulate=True)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.imshow(matrix.numpy(), cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=6,
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_xticks(range(k), test.classes, rotation=90, fontsize=7)
    ax.set_yticks(range(k), test.classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = float(matrix.diag().sum()) / len(test)
    ax.set_title(f"test accuracy {acc:.4f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return matrix.tolist()


def write_table() -> None:
    lines = ["# The source documents' experiments, reproduced", "",
             "Each row: `python scripts/reproduce.py NAME` (the recipe `recipes/seeds/NAME.toml`, the shared training "
             "scripts and runtime), on the 2-core development CPU. The document's number is the one its text "
             "reports; the figures are in each experiment's folder.", "",
             "| experiment | document | measured | document's | epochs | training time | figures |",
             "|---|---|---|---|---|---|---|"]
    for name, exp in EXPERIMENTS.items():
        f = RESULTS / name / "metrics.json"
        if not f.exists():
            lines.append(f"| `{name}` | {exp.document} | not run yet | {exp.paper if exp.paper is not None else '-'} "
                         f"({exp.paper_note}) | | | |")
            continue
        m = json.loads(f.read_text())
        figs = " ".join(f"[{p.stem}]({name}/{p.name})" for p in sorted((RESULTS / name).glob("*.png")))
        lines.append(f"| `{name}` | {exp.document} | {exp.measure} **{m['value']:.4g}** | "
                     f"{exp.paper if exp.paper is not None else '-'} ({exp.paper_note}) | {m['epochs']:.3g} | "
                     f"{m['training_seconds']:.0f} s | {figs} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    notes = RESULTS / "NOTES.md"
    extra = ["", notes.read_text().rstrip()] if notes.exists() else []
    (RESULTS / "README.md").write_text("\n".join(lines + extra) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())

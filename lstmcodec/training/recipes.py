"""Training recipes in files: the stages that reproduce a bundled model, run by a training script's --recipe.

A recipe is a TOML file (Python reads TOML without a dependency, and unlike JSON it holds comments, so each stage
can say why it is there):

    name = "fast"                       # the model the recipe makes (the name in its weights file)
    task = "codec"                      # codec | denoise | classify: the training script that runs the stages
    data = ["../shared/data/bsds432"]   # the script's positional arguments (the command line's, if given, win)

    [[stage]]
    name = "w25"                        # runs in OUT/w25/ and is exported to OUT/w25.pt
    init = "recipe:other"               # optional: a stage of this recipe, "recipe:NAME" (that recipe's result,
                                        # made in OUT/NAME/), "recipe:NAME:STAGE" (that recipe's stages up to
                                        # STAGE), or a bundled model or weights path
    resume = "stage"                    # optional: continue that stage's checkpoint with this stage's options
    processes = 2                       # optional: data-parallel processes on the CPU (torch.distributed.run)
    options = { steps = 6000, lr = 2e-3, residual-gain = true }   # the script's long options, without "--"

    [tables]                            # codec recipes: learn_entropy_tables.py's options, after the last stage
    k = 14

    [tail]                              # optional, codec recipes: fit_tail.py's options, after the tables
    start = 12

A stage whose export exists is done; one that stopped early (--time-limit) resumes when the command is run again.
Options named on the command line beside --recipe (--steps, --time-limit, --threads, --device, ...) apply to every
stage, for short trial runs.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

RECIPES = Path(__file__).resolve().parents[2] / "recipes"   # the recipes of the bundled models, in a checkout
SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
TASK_SCRIPTS = {"codec": "train_codec.py", "denoise": "train_denoiser.py", "classify": "train_classifier.py"}
OVERRIDES = ("steps", "time_limit", "threads", "device", "eval_every", "checkpoint_every", "seed", "no_amp",
             "cpu_amp", "compile", "batch", "epochs")   # what the command line may impose on every stage


class RecipeError(ValueError):
    """A recipe that cannot be read or run, with the reason in one line."""


@dataclass
class Stage:
    name: str
    options: dict
    init: str | None = None
    resume: str | None = None
    processes: int = 1


@dataclass
class Recipe:
    path: Path
    name: str
    task: str
    data: list[str]
    stages: list[Stage]
    tables: dict = field(default_factory=dict)
    finetune: dict = field(default_factory=dict)   # the options of one more cycle from the bundled model (accelerator job)
    tail: dict = field(default_factory=dict)       # fit_tail.py's options (codec recipes; empty: no linear tail)


def load(path: str | os.PathLike) -> Recipe:
    """Read and check a recipe file (a path, or the name of a recipe in recipes/)."""
    path = Path(path)
    if not path.suffix and not path.exists():
        path = RECIPES / f"{path}.toml"
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as e:
        raise RecipeError(f"cannot read recipe {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{path}: not a TOML file ({e})") from None
    try:
        task = raw["task"]
        if task not in TASK_SCRIPTS:
            raise RecipeError(f"{path}: task must be one of {', '.join(TASK_SCRIPTS)}")
        stages = [Stage(s["name"], dict(s.get("options", {})), s.get("init"), s.get("resume"), int(s.get("processes", 1)))
                  for s in raw["stage"]]
        recipe = Recipe(path, raw["name"], task, list(raw.get("data", [])), stages, dict(raw.get("tables", {})),
                        dict(raw.get("finetune", {})), dict(raw.get("tail", {})))
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, RecipeError):
            raise
        raise RecipeError(f"{path}: malformed recipe ({type(e).__name__}: {e})") from None
    names = [s.name for s in stages]
    for s in stages:
        for ref in (s.init, s.resume):
            if ref and not ref.startswith("recipe:") and ref in names and names.index(ref) >= names.index(s.name):
                raise RecipeError(f"{path}: stage {s.name} starts from {ref}, which comes after it")
    return recipe


def options_argv(options: dict) -> list[str]:
    """{"steps": 10, "residual-gain": True, "decoder-hidden": [128, 128, 48, 24]} -> command-line arguments."""
    argv = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def add_recipe_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("recipes")
    g.add_argument("--recipe", metavar="FILE", help="run a recipe's stages into OUT (recipes/*.toml: one per bundled "
                   "model); options named beside it (--steps, --time-limit, --threads, ...) apply to every stage")
    g.add_argument("--stages", help="with --recipe: only these stages (comma-separated names)")
    g.add_argument("--dry-run", action="store_true", help="with --recipe: print the stages' commands, run nothing")


def overrides(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """The options the command line named beside --recipe, as arguments for every stage."""
    named = {k.replace("_", "-"): getattr(args, k) for k in OVERRIDES
             if hasattr(args, k) and getattr(args, k) != parser.get_default(k)}
    return options_argv(named)


class Runner:
    """Runs a recipe's stages with a training script's main(argv), in order, into `out`."""

    def __init__(self, recipe: Recipe, out: Path, main: Callable[[list[str]], int], data: list[str],
                 extra: list[str], only: set[str] | None = None, dry_run: bool = False, log=None,
                 check: Callable[[list[str]], object] | None = None):
        self.recipe, self.out, self.main, self.data, self.extra = recipe, out, main, data or recipe.data, extra
        self.only, self.dry_run, self.check = only, dry_run, check
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))

    def run(self) -> Path:
        """Every stage (skipping those already exported), then the tables; returns the weights file it made."""
        last = None
        for stage in self.recipe.stages:
            last = self.stage(stage) if self.only is None or stage.name in self.only else self.out / f"{stage.name}.pt"
        return self.finish(last)

    def source(self, ref: str) -> str:
        """The weights an `init` names: a stage's export, another recipe's result, or a model name / path."""
        if ref.startswith("recipe:"):
            name, _, upto = ref[len("recipe:"):].partition(":")
            other = load(name)
            return str(Runner(other, self.out / other.name, self.main, self.data, self.extra, None, self.dry_run,
                              self.log, self.check).run_stages(upto or None))
        if ref in [s.name for s in self.recipe.stages]:
            return str(self.out / f"{ref}.pt")
        return ref

    def run_stages(self, upto: str | None = None) -> Path:
        """The stages alone, without the tables (what another recipe starts from), all of them or those up to the
        stage named `upto`; returns the last export."""
        names = [s.name for s in self.recipe.stages]
        if upto is not None and upto not in names:
            raise RecipeError(f"recipe {self.recipe.name} has no stage '{upto}' (its stages: {', '.join(names)})")
        for stage in self.recipe.stages[:names.index(upto) + 1 if upto else len(names)]:
            last = self.stage(stage)
        return last

    def stage(self, stage: Stage) -> Path:
        export = self.out / f"{stage.name}.pt"
        if export.exists():
            self.log(f"recipe {self.recipe.name}: stage {stage.name} is done ({export})")
            return export
        folder = self.out / stage.name
        argv = [*self.data, "--out", str(folder), *options_argv(stage.options), *self.extra]
        if stage.init:
            argv += ["--init", self.source(stage.init)]
        if stage.resume and not (folder / "last.pt").exists() and not self.dry_run:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.out / stage.resume / "last.pt", folder / "last.pt")
        self.call(argv, stage.processes)
        if self.dry_run:
            return export
        self.check_finished(stage, folder)
        self.call(["--out", str(folder), "--export-only", "--export", str(export), "--name", stage.name], 1)
        return export

    def check_finished(self, stage: Stage, folder: Path) -> None:
        from lstmcodec.training.runtime import load_checkpoint

        ck = load_checkpoint(folder / "last.pt")
        fit = ck["fit"]
        goal = fit["stop_at"] if fit.get("stop_at") else fit["steps"]
        # A run planned over time (--schedule-over time) ends at its time limit: done once that much has run.
        ran_its_time = fit.get("schedule_over") == "time" and ck.get("elapsed", 0.0) >= (fit.get("time_limit_s") or float("inf"))
        if ck["step"] < goal and not ck.get("reached") and not ran_its_time:  # reached: its target (--target-loss)
            raise RecipeError(f"stage {stage.name} stopped at step {ck['step']} of {goal}; run the same command again "
                              "to continue it")

    def finish(self, last: Path) -> Path:
        final = self.out / f"{self.recipe.name}.pt"
        if self.recipe.task == "codec":
            tables = dict(self.recipe.tables)
            argv = [*self.data, "--model", str(last), "--out", str(final), "--name", self.recipe.name,
                    *options_argv(tables)]
            self.call(argv, 1, script="learn_entropy_tables.py")
            if self.recipe.tail:
                self.call([*self.data, "--model", str(final), "--out", str(final), *options_argv(self.recipe.tail)], 1,
                          script="fit_tail.py")
        else:
            self.call(["--out", str(self.out / self.recipe.stages[-1].name), "--export-only", "--export", str(final),
                       "--name", self.recipe.name], 1)
        return final

    def call(self, argv: list[str], processes: int, script: str | None = None) -> None:
        script_path = SCRIPTS / (script or TASK_SCRIPTS[self.recipe.task])
        command = [sys.executable, str(script_path), *argv]
        if processes > 1:
            command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                       str(script_path), *argv]
        self.log("$ " + shlex.join(command))  # the command a user would type for this step
        if self.dry_run:
            if self.check is not None and script is None:
                self.check(argv)  # the script's own parser: a stage with an unknown option fails here
            return
        if processes > 1 or script is not None:
            done = subprocess.run(command)
            if done.returncode:
                raise RecipeError(f"{shlex.join(command[:3])} ... failed with exit status {done.returncode}")
            return
        rc = self.main(argv)
        if rc:
            raise RecipeError(f"a stage failed with exit status {rc}")


def positional(args: argparse.Namespace) -> list[str]:
    """The data arguments a command line gave beside --recipe (the data set's name, then its folders or file),
    which replace the recipe's; [] when it gave none."""
    data = getattr(args, "data", None) or []
    data = [data] if isinstance(data, str) else list(data)
    dataset = getattr(args, "dataset", None)
    return [dataset, *data] if dataset else data


def run_file(task: str, args: argparse.Namespace, parser: argparse.ArgumentParser,
             main: Callable[[list[str]], int]) -> int:
    """A training script's --recipe (the script of `task`): run the recipe into args.out; errors are one line and
    exit status 1."""
    try:
        recipe = load(args.recipe)
        if recipe.task != task:
            raise RecipeError(f"{args.recipe} is a {recipe.task} recipe: run it with scripts/{TASK_SCRIPTS[recipe.task]}")
        only = set(args.stages.split(",")) if args.stages else None
        made = Runner(recipe, Path(args.out), main, positional(args), overrides(args, parser), only,
                      args.dry_run, check=parser.parse_args).run()
    except RecipeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"recipe {recipe.name}: " + ("every stage's options parse" if args.dry_run else f"wrote {made}"),
          file=sys.stderr)
    return 0

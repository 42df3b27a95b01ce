"""The CUDA-aware runtime shared by every training script: the one training loop, `fit`, with its learning-rate
schedule, EMA, checkpoints with exact resume, logging and evaluation; device choice, seeding, AMP and torchrun / DDP
come from devices.py, a run's files from runfiles.py (both re-exported here). A script supplies a model (with its
`parameter_groups()` if it wants learning-rate multiples), a function that returns the batch for a given step, a
loss function, and, where the loss has parameters of its own, the criterion that holds them.

Exact resume: batches are a pure function of (seed, step) and the global RNG
state is checkpointed, so a run stopped and resumed reproduces the same steps.
"""
from __future__ import annotations

import copy
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from lstmcodec.devices import Dist, autocast, init_distributed, seed_everything, select_device  # noqa: F401
from lstmcodec.training.runfiles import CSVLog, RunLog, atomic_save, load_checkpoint, log  # noqa: F401
# (the runtime's public names: scripts use runtime.select_device, runtime.log, ...)

# ----------------------------------------------------------------------------- the training loop


def add_runtime_arguments(p) -> None:
    """The command-line options every training script shares (argparse)."""
    g = p.add_argument_group("runtime")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps")
    g.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    g.add_argument("--cpu-amp", action="store_true",
                   help="bf16 autocast on the CPU too: 2x faster steps on CPUs with native bf16 (AVX512-BF16, AMX), slower on others")
    g.add_argument("--checkpoint-every", type=float, default=300, help="seconds between checkpoints")
    g.add_argument("--time-limit", type=float, default=0, help="seconds; stop with a checkpoint after this long (0: none)")
    g.add_argument("--stop-at", type=int, default=0, metavar="STEP",
                   help="stop with a checkpoint at this step, the schedule still planned for --steps (0: at --steps)")
    g.add_argument("--schedule-over", choices=["steps", "time"], default="steps",
                   help="time: the learning-rate schedule runs over --time-limit, and reaching it is the run's end")
    g.add_argument("--eval-at-start", action="store_true", help="also evaluate before the first step")


@dataclass
class FitConfig:
    out_dir: str = "runs/default"
    steps: int = 10_000
    lr: float = 2e-3
    warmup: int = 200            # linear warm-up steps, then cosine decay to lr * min_lr_ratio
    min_lr_ratio: float = 0.05
    schedule: str = "cosine"     # "cosine", "linear" (decay to lr*min_lr_ratio), "constant" or "sawtooth"
                                 # (cycles of `cycle` steps from lr down to lr*min_lr_ratio, counted
                                 # from step 0, so that a warm-up does not shift the teeth)
    cycle: int = 1000
    weight_decay: float = 0.0
    optimizer: str = "adamw"     # "adamw" or "sgd" (Nesterov momentum, `momentum`)
    momentum: float = 0.9        # sgd: 0 is plain stochastic gradient descent
    clip: float = 1.0            # gradient-norm clip (0: off)
    ema: float = 0.0             # EMA decay of the weights (0: off); the EMA model is evaluated and exported
    amp: bool = True             # bf16 autocast on CUDA
    cpu_amp: bool = False        # ... and on the CPU (worth it only with native bf16)
    compile: bool = False        # torch.compile the model
    seed: int = 0
    device: str = "auto"
    log_every: int = 20
    eval_every: int = 0          # steps between evaluations (0: only at the end)
    checkpoint_every_s: float = 300.0
    time_limit_s: float = 0.0    # stop cleanly with a checkpoint after this many seconds (0: no limit)
    stop_at: int = 0             # stop cleanly with a checkpoint at this step, the schedule planned for `steps` (0: off)
    schedule_over: str = "steps" # "steps", or "time": the schedule runs over time_limit_s, whose end is the run's end
    eval_at_start: bool = False  # also evaluate before the first step (the "before" of a run's report)
    extra: dict = field(default_factory=dict)  # script-specific settings, saved in the checkpoint


def learning_rate(cfg: FitConfig, step: int, elapsed_s: float = 0.0) -> float:
    """The learning rate of a step: warm-up, then the schedule over the steps (or, with schedule_over "time", over
    the time limit: elapsed_s / time_limit_s is the progress, for a run planned in minutes, not steps)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.schedule == "constant":
        return cfg.lr
    lo = cfg.lr * cfg.min_lr_ratio
    if cfg.schedule == "sawtooth":
        phase = (step % cfg.cycle) / cfg.cycle  # teeth on absolute steps: each cycle (an epoch) ends at its lowest
        return cfg.lr - (cfg.lr - lo) * phase
    if cfg.schedule_over == "time":
        progress = min(1.0, elapsed_s / max(cfg.time_limit_s, 1e-9))
    else:
        progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    if cfg.schedule == "linear":
        return cfg.lr - (cfg.lr - lo) * progress
    return lo + 0.5 * (cfg.lr - lo) * (1 + math.cos(math.pi * progress))


@dataclass
class FitResult:
    model: nn.Module       # the trained model (the EMA copy when EMA is on), unwrapped, in eval mode
    step: int
    finished: bool         # False when the time limit stopped the run early
    metrics: dict


def param_groups(*modules: nn.Module | None) -> list[dict]:
    """The optimizer's parameter groups of the modules a run trains (the model, then its loss's own parameters): what
    each one's `parameter_groups()` states (dicts of "params" and "lr_scale", the multiple of the schedule's learning
    rate), or one group at the schedule's rate for a module without that method."""
    groups = []
    for m in modules:
        if m is not None and any(True for _ in m.parameters()):
            groups += m.parameter_groups() if hasattr(m, "parameter_groups") else [{"params": list(m.parameters()),
                                                                                     "lr_scale": 1.0}]
    return groups


def make_optimizer(groups: list[dict], cfg: FitConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
                               weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


@dataclass
class Run:
    """What a run's loop carries between steps, and its checkpoint: the model, its loss's own parameters (a
    criterion with a learned part, or None), the EMA copy, the optimizer, where it is."""
    model: nn.Module
    criterion: nn.Module | None
    ema: nn.Module | None
    opt: torch.optim.Optimizer
    path: Path
    step: int = 0
    elapsed: float = 0.0      # seconds of training (not evaluation) before this process started
    t0: float = field(default_factory=time.time)

    def parameters(self) -> list[nn.Parameter]:
        """What the optimizer trains: the model's parameters and the criterion's."""
        return [*self.model.parameters(), *(self.criterion.parameters() if self.criterion is not None else [])]

    def seconds(self) -> float:
        return self.elapsed + time.time() - self.t0

    def save(self, fit: FitConfig, meta: dict | None, reached: bool = False) -> None:
        atomic_save({"reached": reached,  # stopped at its target (a finished run, not an interrupted one)
                     "model": self.model.state_dict(), "ema": None if self.ema is None else self.ema.state_dict(),
                     "criterion": None if self.criterion is None else self.criterion.state_dict(),
                     "optimizer": self.opt.state_dict(), "step": self.step, "elapsed": self.seconds(),
                     "rng": torch.get_rng_state(), "fit": asdict(fit), "meta": meta or {}}, self.path)

    def resume(self, groups: list[dict], seed: int, dist: Dist) -> None:
        """Continue from the checkpoint at self.path: weights, EMA, optimizer, step, time and random state."""
        ck = upgrade_checkpoint(load_checkpoint(self.path))
        self.model.load_state_dict(ck["model"])
        if self.criterion is not None and ck.get("criterion") is not None:
            self.criterion.load_state_dict(ck["criterion"])
        self.opt.load_state_dict(ck["optimizer"])
        for g, built in zip(self.opt.param_groups, groups):  # the multipliers come from the model, not the checkpoint
            g["lr_scale"] = built["lr_scale"]
        if self.ema is not None and ck.get("ema") is not None:
            self.ema.load_state_dict(ck["ema"])
        self.step, self.elapsed = ck["step"], ck.get("elapsed", 0.0)
        if dist.world_size == 1:
            torch.set_rng_state(ck["rng"])
        else:  # each rank's stream is re-derived from (seed, rank, step)
            torch.manual_seed(seed + 7919 * dist.rank + 104729 * self.step)

    def average_criterion_grads(self, dist: Dist) -> None:
        """On several ranks, the criterion's gradients averaged over them (DDP does it for the model's)."""
        if dist.world_size > 1 and self.criterion is not None:
            for p in self.criterion.parameters():
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= dist.world_size

    def update_ema(self, decay: float) -> None:
        if self.ema is None:
            return
        with torch.no_grad():
            for pe, pm in zip(self.ema.parameters(), self.model.parameters()):
                pe.lerp_(pm.detach(), 1 - decay)
            for be, bm in zip(self.ema.buffers(), self.model.buffers()):  # batch-norm statistics: the model's own
                be.copy_(bm)


def upgrade_checkpoint(ck: dict) -> dict:
    """A checkpoint in today's layout. Codec runs with a rate model once trained one module holding both
    (keys codec.* and rate.*): the model is its codec.* part, the criterion its rate.* part."""
    if any(k.startswith("codec.") for k in ck["model"]) and ck.get("criterion") is None:
        def part(sd: dict | None, prefix: str) -> dict | None:
            return None if sd is None else {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        ck = {**ck, "model": part(ck["model"], "codec."), "ema": part(ck.get("ema"), "codec."),
              "criterion": {k: v for k, v in ck["model"].items() if k.startswith("rate.")}}
    return ck


def fit(
    model: nn.Module,
    batch_fn: Callable[[int], Any],
    loss_fn: Callable[[nn.Module, Any], tuple[torch.Tensor, dict]],
    cfg: FitConfig,
    evaluate: Callable[[nn.Module, int], dict] | None = None,
    meta: dict | None = None,
    stop: Callable[[dict], bool] | None = None,
    criterion: nn.Module | None = None,
) -> FitResult:
    """Train `model` for cfg.steps steps, resuming from cfg.out_dir/last.pt when it exists.

    batch_fn(step) returns the batch of a step (tensors or tuples of tensors, on the CPU);
    loss_fn(model, batch) returns (loss, metrics to log). A criterion with parameters of its own (a learned rate
    model) is trained and checkpointed with the model. `meta` is saved in every checkpoint.
    evaluate(model, step) returns metrics, logged with the elapsed training time; when stop(metrics) is
    true the run ends there (a target reached), with a checkpoint. SIGTERM or Ctrl-C ends the run after the step in
    progress, with a checkpoint to resume from (a second one stops it at once).
    """
    dist, device = init_distributed(cfg.device)
    seed_everything(cfg.seed + dist.rank)
    run, groups = _start(model, criterion, cfg, device)
    if run.path.exists():
        run.resume(groups, cfg.seed, dist)
        if dist.main:
            log(f"resumed from {run.path} at step {run.step}")
    train_model = _wrap(model, cfg, dist, device)
    logger = RunLog(run.path.parent) if dist.main else None
    run.t0, clock = time.time(), _Clock(run.step)
    finished, metrics, results = True, {}, None
    model.train()
    if evaluate is not None and cfg.eval_at_start and run.step == 0:
        _run_eval(evaluate, run.ema or model, 0, logger, dist, 0.0)
        model.train()
        run.t0 = clock.last_log = time.time()
    with _StopRequest() as interrupt:
        while run.step < cfg.steps:
            lr = learning_rate(cfg, run.step, run.seconds())
            for g in run.opt.param_groups:
                g["lr"] = lr * g["lr_scale"]
            batch = _to_device(batch_fn(run.step * dist.world_size + dist.rank), device)
            with autocast(device, cfg.amp, cpu=cfg.cpu_amp):
                loss, metrics = loss_fn(train_model, batch)
            run.opt.zero_grad(set_to_none=True)
            loss.backward()
            run.average_criterion_grads(dist)
            if cfg.clip > 0:
                nn.utils.clip_grad_norm_(run.parameters(), cfg.clip)
            run.opt.step()
            run.update_ema(cfg.ema)
            run.step += 1

            if dist.main and (run.step % cfg.log_every == 0 or run.step == cfg.steps):
                clock.log_step(logger, run, cfg, lr, loss, metrics)
            results = None
            if evaluate is not None and cfg.eval_every and (run.step % cfg.eval_every == 0 or run.step == cfg.steps):
                results = clock.evaluate(evaluate, run, logger, dist)
                model.train()
            reached = _agree(stop is not None and results is not None and dist.main and stop(results), dist, device)
            reached = reached or 0 < cfg.stop_at <= run.step
            over_time = _agree(bool(cfg.time_limit_s) and run.seconds() >= cfg.time_limit_s, dist, device)
            halted = _agree(interrupt.requested is not None, dist, device)
            if _agree(time.time() - clock.last_ckpt >= cfg.checkpoint_every_s, dist, device) \
                    or run.step == cfg.steps or over_time or reached or halted:
                if dist.main:
                    run.save(cfg, meta, reached)
                clock.last_ckpt = time.time()
            if halted and run.step < cfg.steps and not reached:
                if dist.main:
                    log(f"stopped by {interrupt.requested} at step {run.step}; checkpoint saved to {run.path} "
                        "(run again to resume)")
                finished = False
                break
            if reached or (over_time and run.step < cfg.steps):
                finished = _ended(run, cfg, reached, dist)
                break
    return _finish(run, evaluate, results, metrics, finished, logger, dist)


def _start(model: nn.Module, criterion: nn.Module | None, cfg: FitConfig, device: torch.device
           ) -> tuple[Run, list[dict]]:
    """A new run's state on `device`: the EMA copy, the optimizer of the model's and the criterion's groups."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.to(device)
    if criterion is not None:
        criterion.to(device).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False) if cfg.ema > 0 else None
    groups = param_groups(model, criterion)
    return Run(model, criterion, ema, make_optimizer(groups, cfg), out / "last.pt"), groups


def _wrap(model: nn.Module, cfg: FitConfig, dist: Dist, device: torch.device) -> nn.Module:
    """What the loss function is given: the model, under DDP on several ranks, compiled with cfg.compile."""
    if dist.world_size > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(model) if cfg.compile else model


def _ended(run: Run, cfg: FitConfig, reached: bool, dist: Dist) -> bool:
    """Says why the loop ends early (a target, --stop-at, the time limit); whether the run counts as finished."""
    if dist.main:
        if reached:
            log(f"target reached at step {run.step}" if run.step != cfg.stop_at else f"stopped at step {run.step} (--stop-at)")
        else:
            log(f"time limit reached at step {run.step}; checkpoint saved to {run.path}")
    return reached or cfg.schedule_over == "time"  # a run planned in time has reached its planned end


def _finish(run: Run, evaluate, results: dict | None, metrics: dict, finished: bool, logger, dist: Dist) -> FitResult:
    final = run.ema or run.model
    final.eval()
    if results is None:
        results = dict(metrics)
        if evaluate is not None and finished:
            results = _run_eval(evaluate, final, run.step, logger, dist, run.seconds())
    if dist.world_size > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return FitResult(final, run.step, finished, results)


class _StopRequest:
    """While the loop runs: SIGTERM and SIGINT (Ctrl-C) ask it to stop after the step in progress, with a checkpoint;
    `requested` names the signal. The first one puts the previous handlers back, so a second one stops at once.
    Signals are left alone outside the main thread, where Python cannot install handlers."""

    def __enter__(self) -> _StopRequest:
        self.requested, self.previous = None, {}
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _handle(self, signum, _frame) -> None:
        self.requested = signal.Signals(signum).name
        self.__exit__()

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}


class _Clock:
    """The loop's times: of the last progress line and checkpoint; evaluation's time is not training's."""

    def __init__(self, step: int):
        self.last_log = self.last_ckpt = time.time()
        self.last_step = step

    def log_step(self, logger: RunLog, run: Run, cfg: FitConfig, lr: float, loss: torch.Tensor, metrics: dict) -> None:
        now = time.time()
        sps = (now - self.last_log) / max(1, run.step - self.last_step)
        self.last_log, self.last_step = now, run.step
        value = float(loss.detach())
        logger.write({"step": run.step, "lr": lr, "loss": value, "s_per_step": sps, "elapsed_s": run.seconds(),
                      **{k: float(v) for k, v in metrics.items()}})
        log(f"step {run.step}/{cfg.steps} loss {value:.4f} lr {lr:.2e} {sps:.2f}s/step "
            f"eta {sps * (cfg.steps - run.step) / 60:.0f}min")

    def evaluate(self, evaluate, run: Run, logger: RunLog | None, dist: Dist) -> dict:
        t = time.time()
        results = _run_eval(evaluate, run.ema or run.model, run.step, logger, dist, run.seconds())
        run.t0 += time.time() - t   # `elapsed` counts training time, not evaluation
        self.last_log += time.time() - t
        return results


def _agree(flag: bool, dist: Dist, device: torch.device) -> bool:
    """Rank 0's decision, shared with every rank (so all stop or checkpoint together)."""
    if dist.world_size == 1:
        return flag
    t = torch.tensor([int(flag)], device=device)
    torch.distributed.broadcast(t, src=0)
    return bool(t.item())


def _run_eval(evaluate, model: nn.Module, step: int, logger: RunLog | None, dist: Dist, elapsed: float) -> dict:
    if not dist.main:
        return {}
    model.eval()
    with torch.no_grad():
        res = evaluate(model, step)
    logger.write({"step": step, "elapsed_s": elapsed, **{f"val_{k}": v for k, v in res.items()}})
    log(f"eval @ {step} ({elapsed:.1f} s of training): " + " ".join(f"{k} {v:.4f}" for k, v in res.items()))
    return res


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(b, device) for b in batch)
    return batch

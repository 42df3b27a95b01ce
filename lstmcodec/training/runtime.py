"""The CUDA-aware runtime shared by every training script.

Device choice (cuda > mps > cpu), seeding, AMP (bf16 on CUDA), torchrun / DDP,
atomic checkpoints with exact resume, CSV logging (mirrored to TensorBoard when
the tensorboard package is installed) and progress, and the one
training loop, `fit`. A script supplies three things: a model, a function that
returns the batch for a given step, and a loss function.

Exact resume: batches are a pure function of (seed, step) and the global RNG
state is checkpointed, so a run stopped and resumed reproduces the same steps.
"""
from __future__ import annotations

import copy
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from lstmcodec.training.runfiles import CSVLog, RunLog, atomic_save, load_checkpoint, log  # noqa: F401 (the runtime's public names)

# ----------------------------------------------------------------------------- devices


def select_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu. Asking for an absent device is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was requested but no CUDA device is available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("MPS was requested but is not available")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(device: torch.device, enabled: bool, cpu: bool = False):
    """bf16 autocast on CUDA when enabled, and on the CPU too when `cpu` is set; a no-op elsewhere.

    On a CPU with native bf16 (AVX512-BF16 or AMX) this halves the time of a convolutional training
    step; on one without, it is slower than fp32, hence opt-in there."""
    if enabled and (device.type == "cuda" or (cpu and device.type == "cpu")):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


# ----------------------------------------------------------------------------- distributed


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str = "auto") -> tuple[Dist, torch.device]:
    """Reads torchrun's environment; starts NCCL on CUDA or gloo on CPU when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    dist = Dist(int(os.environ.get("RANK", 0)), world, int(os.environ.get("LOCAL_RANK", 0)))
    device = select_device(device_name)
    if world > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group(backend=backend)
    return dist, device


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


def param_groups(model: nn.Module) -> list[dict]:
    """The optimizer's parameter groups: one per learning-rate multiplier that a parameter asks for through an
    `lr_scale` attribute (1 when it has none), in the order the parameters first appear."""
    groups: dict[float, list] = {}
    for p in model.parameters():
        groups.setdefault(float(getattr(p, "lr_scale", 1.0)), []).append(p)
    return [{"params": ps, "lr_scale": scale} for scale, ps in groups.items()]


def fit(
    model: nn.Module,
    batch_fn: Callable[[int], Any],
    loss_fn: Callable[[nn.Module, Any], tuple[torch.Tensor, dict]],
    cfg: FitConfig,
    evaluate: Callable[[nn.Module, int], dict] | None = None,
    meta: dict | None = None,
    stop: Callable[[dict], bool] | None = None,
) -> FitResult:
    """Train `model` for cfg.steps steps, resuming from cfg.out_dir/last.pt when it exists.

    batch_fn(step) returns the batch of a step (tensors or tuples of tensors, on the CPU);
    loss_fn(model, batch) returns (loss, metrics to log). `meta` is saved in every checkpoint.
    evaluate(model, step) returns metrics, logged with the elapsed training time; when stop(metrics) is
    true the run ends there (a target reached), with a checkpoint.
    """
    dist, device = init_distributed(cfg.device)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "last.pt"
    seed_everything(cfg.seed + dist.rank)

    model.to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False) if cfg.ema > 0 else None
    groups = param_groups(model)
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
                              weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, elapsed = 0, 0.0
    if ckpt_path.exists():
        ck = load_checkpoint(ckpt_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        for g, built in zip(opt.param_groups, groups):  # the multipliers come from the model, not the checkpoint
            g["lr_scale"] = built["lr_scale"]
        if ema is not None and ck.get("ema") is not None:
            ema.load_state_dict(ck["ema"])
        start, elapsed = ck["step"], ck.get("elapsed", 0.0)
        if dist.world_size == 1:
            torch.set_rng_state(ck["rng"])
        else:  # each rank's stream is re-derived from (seed, rank, step)
            torch.manual_seed(cfg.seed + 7919 * dist.rank + 104729 * start)
        if dist.main:
            log(f"resumed from {ckpt_path} at step {start}")

    train_model: nn.Module = model
    if dist.world_size > 1:
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)

    def save(step: int, reached: bool = False) -> None:
        if dist.main:
            atomic_save({"reached": reached,  # stopped at its target (a finished run, not an interrupted one)
                "model": model.state_dict(), "ema": None if ema is None else ema.state_dict(),
                "optimizer": opt.state_dict(), "step": step, "elapsed": elapsed + time.time() - t0,
                "rng": torch.get_rng_state(), "fit": asdict(cfg), "meta": meta or {},
            }, ckpt_path)

    logger = RunLog(out) if dist.main else None
    t0 = last_ckpt = last_log = time.time()
    step = last_log_step = start
    finished = True
    model.train()
    metrics: dict = {}
    results: dict | None = None
    if evaluate is not None and cfg.eval_at_start and start == 0:
        _run_eval(evaluate, ema or model, 0, logger, dist, 0.0)
        model.train()
        t0 = last_log = time.time()
    while step < cfg.steps:
        lr = learning_rate(cfg, step, elapsed + time.time() - t0)
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_scale"]
        batch = _to_device(batch_fn(step * dist.world_size + dist.rank), device)
        with autocast(device, cfg.amp, cpu=cfg.cpu_amp):
            loss, metrics = loss_fn(train_model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        if ema is not None:
            with torch.no_grad():
                for pe, pm in zip(ema.parameters(), model.parameters()):
                    pe.lerp_(pm.detach(), 1 - cfg.ema)
                for be, bm in zip(ema.buffers(), model.buffers()):  # batch-norm statistics: the model's own
                    be.copy_(bm)
        step += 1

        if dist.main and (step % cfg.log_every == 0 or step == cfg.steps):
            now = time.time()
            sps = (now - last_log) / max(1, step - last_log_step)
            last_log, last_log_step = now, step
            row = {"step": step, "lr": lr, "loss": float(loss.detach()), "s_per_step": sps,
                   "elapsed_s": elapsed + now - t0, **{k: float(v) for k, v in metrics.items()}}
            logger.write(row)
            eta = sps * (cfg.steps - step)
            log(f"step {step}/{cfg.steps} loss {float(loss.detach()):.4f} lr {lr:.2e} {sps:.2f}s/step eta {eta/60:.0f}min")
        results = None
        if evaluate is not None and cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps):
            t_eval = time.time()
            results = _run_eval(evaluate, ema or model, step, logger, dist, elapsed + t_eval - t0)
            t0 += time.time() - t_eval  # `elapsed` counts training time, not evaluation
            last_log += time.time() - t_eval
            model.train()
        reached = _agree(stop is not None and results is not None and dist.main and stop(results), dist, device)
        reached = reached or 0 < cfg.stop_at <= step
        over_time = _agree(bool(cfg.time_limit_s) and (elapsed + time.time() - t0) >= cfg.time_limit_s, dist, device)
        due = _agree(time.time() - last_ckpt >= cfg.checkpoint_every_s, dist, device)
        if due or step == cfg.steps or over_time or reached:
            save(step, reached)
            last_ckpt = time.time()
        if reached:
            if dist.main:
                log(f"target reached at step {step}" if step != cfg.stop_at else f"stopped at step {step} (--stop-at)")
            break
        if over_time and step < cfg.steps:
            if dist.main:
                log(f"time limit reached at step {step}; checkpoint saved to {ckpt_path}")
            finished = cfg.schedule_over == "time"  # a run planned in time has reached its planned end
            break

    final = ema or model
    final.eval()
    if results is None:
        results = dict(metrics)
        if evaluate is not None and finished:
            results = _run_eval(evaluate, final, step, logger, dist, elapsed + time.time() - t0)
    if dist.world_size > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return FitResult(final, step, finished, results)


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

"""The one training loop of codec (`fit`), used by every trainer (hyperprior, M2T, VCT).

    trainer ── model, optimiser, closures ──► fit ──► RUN/checkpoint.pt  (Checkpoint, atomic, resumable)
                                               └───► RUN/log.csv         (appended across resumes)

Progress is the larger of steps / max_steps and minutes / max_minutes (elapsed time carries over
resumes), so a run can be sized by wall time (GPU loans) or by steps (reproducible CPU runs).
Learning rate (`lr_at`): linear warm-up, constant, then cosine decay over the last
`decay_fraction`. A trainer plugs in its loss (which sees the progress, for schedules such as the
hyperprior's lambda boost), its validation, and extra optimisers with their own losses (the
hyperprior's aux optimiser for the factorized density's quantiles).
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from codec.train.config import LoopConfig


def lr_at(cfg: LoopConfig, step: int, progress: float) -> float:
    """Learning rate at `step` and `progress` (0..1): warm-up, constant, cosine decay to 2%."""
    warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    start = 1.0 - cfg.decay_fraction
    if progress <= start:
        return cfg.lr * warm
    t = min(1.0, (progress - start) / cfg.decay_fraction)
    return cfg.lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


def start(cfg: LoopConfig) -> Path:
    """What every trainer does first: torch's thread count, the run folder (returned), the seed."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    return run_dir


@dataclass
class Checkpoint:
    """RUN/checkpoint.pt: model, optimiser (and `optimizers`, saved under their names), step, elapsed
    seconds, the generator's and torch's RNG states, and the constant `facts` (the run's config, the
    model config) that the exporters read. Written atomically: a kill leaves the previous one."""

    path: Path
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    gen: torch.Generator
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    facts: dict = field(default_factory=dict)
    after_save: Callable[[], None] | None = None

    def load(self, log=print) -> tuple[int, float]:
        """Restores everything when the file exists; returns (step, elapsed seconds), (0, 0.0) if not."""
        if not self.path.exists():
            return 0, 0.0
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])
        self.gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        log(f"resumed at step {step} ({elapsed / 60:.1f} min)")
        return step, elapsed

    def save(self, step: int, elapsed: float) -> None:
        state = {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "step": step, "elapsed": elapsed,
                 "gen": self.gen.get_state(), "torch_rng": torch.get_rng_state(),
                 **{name: opt.state_dict() for name, opt in self.optimizers.items()}, **self.facts}
        tmp = self.path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.path)
        if self.after_save is not None:
            self.after_save()


@dataclass
class ExtraOptimizer:
    """A second optimiser stepped after the main one on its own loss (e.g. the hyperprior's `aux`
    loss on the factorized density's quantiles); its value is logged under `name`."""

    name: str
    opt: torch.optim.Optimizer
    loss: Callable[[], torch.Tensor]

    def step(self) -> torch.Tensor:
        value = self.loss()
        self.opt.zero_grad(set_to_none=True)
        value.backward()
        self.opt.step()
        return value


def open_log(path: Path, header: list[str]):
    """(file, csv writer) appending to `path`; the header is written once, for a new file."""
    new = not path.exists()
    f = open(path, "a", newline="")
    writer = csv.writer(f)
    if new:
        writer.writerow(header)
    return f, writer


def _cell(value) -> str:
    return str(value) if isinstance(value, (str, int)) else f"{float(value):.6g}"


def _show(values: dict) -> str:
    return " ".join(f"{k} {v if isinstance(v, str) else format(float(v), '.4f')}" for k, v in values.items())


Loss = Callable[[float], tuple[torch.Tensor, dict]]


def fit(cfg: LoopConfig, ckpt: Checkpoint, *, loss: Loss, validate: Callable[[], dict], columns: list[str],
        resume: bool = True, clip_params: Sequence[torch.nn.Parameter] | None = None,
        extra: Sequence[ExtraOptimizer] = (), lr_schedule: Callable[[int, float], float] | None = None, log=print,
        on_step=None, on_progress=None, log_every: int = 50, validate_first: bool = False) -> tuple[int, float]:
    """Trains `ckpt.model` until `max_steps` or `max_minutes`, whichever comes first; resumes from
    the checkpoint when `resume`. Returns (step, elapsed seconds).

    Each step: the learning rate `lr_schedule(step, progress)` (default `lr_at`; times a param
    group's `lr_scale`, if any),
    `loss(progress)` -> (loss, metrics: name -> number, for the log), gradient clipping (of
    `clip_params`, default all), the optimiser, then each `extra` optimiser. A CSV row every
    `log_every` steps and at step 1: the `columns` that step, lr, seconds, metrics and validation
    provide; `validate()` -> name -> value every `val_every` steps (and at step 1 with
    `validate_first`), also logged as a line. `on_step(step, loss)` and `on_progress(fraction, text)`
    after every step. A checkpoint every `ckpt_minutes` and at the end.
    """
    model, opt = ckpt.model, ckpt.opt
    step, elapsed = ckpt.load(log) if resume else (0, 0.0)
    csv_file, writer = open_log(ckpt.path.parent / "log.csv", columns)
    t0 = time.monotonic() - elapsed
    last_ckpt = time.monotonic()
    with csv_file:
        while True:
            elapsed = time.monotonic() - t0
            progress = max(step / cfg.max_steps, elapsed / 60.0 / cfg.max_minutes)
            if progress >= 1.0:
                break
            lr = lr_at(cfg, step, progress) if lr_schedule is None else lr_schedule(step, progress)
            for g in opt.param_groups:
                g["lr"] = lr * g.get("lr_scale", 1.0)
            model.train()
            value, metrics = loss(progress)
            opt.zero_grad(set_to_none=True)
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters() if clip_params is None else clip_params, cfg.clip)
            opt.step()
            metrics = {k: v.detach() if torch.is_tensor(v) else v
                       for k, v in {**metrics, **{e.name: e.step() for e in extra}}.items()}
            step += 1
            if on_step is not None:
                on_step(step, value.item())
            validating = step % cfg.val_every == 0 or (validate_first and step == 1)
            if step % log_every == 0 or step == 1 or validating:
                vals = validate() if validating else {}
                row = {"step": step, "lr": f"{lr:.3g}", "seconds": f"{elapsed:.1f}", **metrics, **vals}
                writer.writerow([_cell(row[c]) if c in row else "" for c in columns])
                csv_file.flush()
                if validating or step == 1:
                    eta = elapsed / max(progress, 1e-9) * (1 - progress) / 60
                    log(f"step {step} {progress * 100:5.1f}% {_show(metrics)} lr {lr:.2e} {elapsed / 60:.1f} min "
                        f"eta {eta:.1f} min" + (f" | {_show(vals)}" if vals else ""))
            if on_progress is not None:
                on_progress(progress, f"step {step} {_show(metrics)}")
            if time.monotonic() - last_ckpt > cfg.ckpt_minutes * 60:
                ckpt.save(step, elapsed)
                last_ckpt = time.monotonic()
    ckpt.save(step, elapsed)
    log(f"finished at step {step}, {elapsed / 60:.1f} min")
    return step, elapsed

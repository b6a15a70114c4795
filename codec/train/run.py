"""What the transformer training loops of codec share (M2T, VCT): their common options, the
checkpoint (model, optimizer, step, elapsed time, RNG states) written atomically and resumed
exactly, the CSV log (appended across resumes) and the loop itself (`fit`)."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch


def resume(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator,
           log=print) -> tuple[int, float]:
    """Loads `path` into model, optimizer and generator (and torch's RNG) when it exists; returns
    (step, elapsed seconds), (0, 0.0) for a fresh run."""
    if not path.exists():
        return 0, 0.0
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    gen.set_state(state["gen"])
    torch.set_rng_state(state["torch_rng"])
    step, elapsed = int(state["step"]), float(state["elapsed"])
    log(f"resumed at step {step} ({elapsed / 60:.1f} min)")
    return step, elapsed


def save(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator, step: int,
         elapsed: float, **extra) -> None:
    """Writes the checkpoint atomically (a kill leaves the previous one intact)."""
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed,
             "gen": gen.get_state(), "torch_rng": torch.get_rng_state(), **extra}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def open_log(path: Path, header: list[str]):
    """(file, csv writer) appending to `path`; the header is written once, for a new file."""
    new = not path.exists()
    f = open(path, "a", newline="")
    writer = csv.writer(f)
    if new:
        writer.writerow(header)
    return f, writer


@dataclass(kw_only=True)
class LoopConfig:
    """The options every training loop of codec takes (each config adds its own and may change these
    defaults). Keyword-only, so subclasses may put required fields first."""

    batch: int = 16
    lr: float = 5e-4
    warmup_steps: int = 200
    decay_fraction: float = 0.3
    max_steps: int = 100_000
    max_minutes: float = 60.0
    clip: float = 1.0
    bf16: bool = False
    threads: int = 0
    val_every: int = 250
    ckpt_minutes: float = 3.0
    seed: int = 0
    device: str = "cpu"


def fit(cfg: LoopConfig, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int, elapsed: float, *,
        loss: Callable[[], torch.Tensor], validate: Callable[[], list[float]], save: Callable[[int, float], None],
        log_path: Path, val_columns: list[str], log=print, on_step=None, log_every: int = 25,
        validate_first: bool = True) -> tuple[int, float]:
    """The loop until `max_steps` or `max_minutes` (whichever comes first; elapsed time carries over
    resumes): learning rate from `lr_at`, `loss()` (one batch, drawn by the caller's closure),
    gradient clipping, a CSV row every `log_every` steps (validation every `val_every` and, with
    `validate_first`, at step 1), a checkpoint every `ckpt_minutes` and at the end. Returns
    (step, elapsed seconds)."""
    from codec.train.loop import lr_at

    csv_file, writer = open_log(log_path, ["step", "bpp", "lr", "seconds"] + val_columns)
    t0 = time.monotonic() - elapsed
    last_ckpt = time.monotonic()
    model.train()
    with csv_file:
        while True:
            elapsed = time.monotonic() - t0
            progress = max(step / cfg.max_steps, elapsed / 60.0 / cfg.max_minutes)
            if progress >= 1.0:
                break
            lr = lr_at(cfg, step, progress)
            for g in opt.param_groups:
                g["lr"] = lr
            value = loss()
            opt.zero_grad(set_to_none=True)
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            step += 1
            if on_step is not None:
                on_step(step, value.item())
            validating = step % cfg.val_every == 0 or (validate_first and step == 1)
            if step % log_every == 0 or step == 1 or validating:
                vals = validate() if validating else None
                writer.writerow([step, f"{value.item():.5f}", f"{lr:.3g}", round(elapsed, 1)]
                                + ([f"{v:.5f}" for v in vals] if vals else [""] * len(val_columns)))
                csv_file.flush()
                if vals or step == 1:
                    eta = elapsed / max(progress, 1e-9) * (1 - progress) / 60
                    log(f"step {step} {progress * 100:5.1f}% bpp {value.item():.4f} lr {lr:.2e} "
                        f"{elapsed / 60:.1f} min eta {eta:.1f} min"
                        + (" | val bpp " + ", ".join(f"{v:.4f}" for v in vals) if vals else ""))
            if time.monotonic() - last_ckpt > cfg.ckpt_minutes * 60:
                save(step, elapsed)
                last_ckpt = time.monotonic()
    save(step, elapsed)
    log(f"finished at step {step}, {elapsed / 60:.1f} min")
    return step, elapsed

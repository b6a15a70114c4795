"""What every training loop of codec shares: the checkpoint (model, optimizer, step, elapsed time,
RNG states) written atomically and resumed exactly, and the CSV log (appended across resumes)."""

from __future__ import annotations

import csv
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

"""Training speed on this machine: seconds per step of candidate set-ups, as ratios to a baseline
measured in the same process (hyperprior 128/192, GDN, float32, 256 crops, batch 8, eager).

    python scripts/bench_train.py [--steps 4] [--threads 2] [--compile] > results/bench_train.md

Speed only: which set-up reaches the best RD per CPU-minute also needs training runs.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior  # noqa: E402
from codec.train.hyperprior import rd_loss  # noqa: E402


def seconds_per_step(cfg: HyperpriorConfig, crop: int, bf16: bool, compiled: bool, steps: int, batch: int = 8) -> float:
    torch.manual_seed(0)
    model = MeanScaleHyperprior(cfg).to(memory_format=torch.channels_last)
    run = torch.compile(model) if compiled else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    x = torch.rand(batch, 3, crop, crop).contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(steps + 1):  # the first step (and compilation) is not timed
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _, _ = rd_loss(run, x, 0.0067)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow to start)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cases = []
    for name, cfg in (("128/192 GDN", HyperpriorConfig()), ("128/192 ReLU", HyperpriorConfig(act="relu")),
                      ("64/96 GDN", HyperpriorConfig(N=64, M=96)), ("64/96 ReLU", HyperpriorConfig(N=64, M=96, act="relu"))):
        for crop in (256, 128):
            for bf16 in (False, True):
                cases.append((name, cfg, crop, bf16, False))
    if a.compile:
        cases.append(("128/192 GDN", HyperpriorConfig(), 256, True, True))
    base = None
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    print(f"Machine: {cpu}, torch {torch.__version__}, {a.threads} threads, batch 8, median of {a.steps} steps.\n")
    print("| model | crop | precision | compiled | s/step | vs baseline | pixels/s vs baseline |")
    print("|---|---:|---|---|---:|---:|---:|")
    for name, cfg, crop, bf16, compiled in cases:
        s = seconds_per_step(cfg, crop, bf16, compiled, a.steps)
        base = base or s
        px = (crop / 256) ** 2 * base / s
        print(f"| {name} | {crop} | {'bf16' if bf16 else 'fp32'} | {'yes' if compiled else 'no'} | {s:.3f} | {s / base:.2f}x | {px:.2f}x |", flush=True)


if __name__ == "__main__":
    main()

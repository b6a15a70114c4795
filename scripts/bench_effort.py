"""Speed and quality of the effort levels' refinement (SGA) on one Kodak image, on this machine.

    python scripts/bench_effort.py [--image kodim19.png] [--model hyperprior-mse-l0067] [--steps 100]
    python scripts/bench_effort.py --model m2t-vr --quality 45

Seconds per Adam step of the refinement for four settings, in one process, as ratios to float32
eager; and the coded cost, bpp and PSNR each reaches after --steps steps from the same start (does
bfloat16 hold quality?). Writes a markdown table to stdout (results/effort/speed.md holds a run).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codec.eval.report import machine  # noqa: E402
from codec.io import read_image  # noqa: E402
from codec.pipeline import hyperprior, m2t  # noqa: E402
from codec.pipeline.rate import rate_for  # noqa: E402
from codec.pipeline.refine import Schedule  # noqa: E402
from codec.settings import data_dir  # noqa: E402
from codec.weights import load_model  # noqa: E402

SETTINGS = {"float32 eager": (False, False), "bfloat16 eager": (True, False), "float32 compiled": (False, True),
            "bfloat16 compiled": (True, True)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", default="kodim19.png")
    p.add_argument("--model", default="hyperprior-mse-l0067")
    p.add_argument("--quality", type=float, default=60.0)
    p.add_argument("--steps", type=int, default=100)
    a = p.parse_args(argv)
    model = load_model(a.model)
    family = {"hyperprior": hyperprior, "m2t": m2t}[model.family]
    pixels = read_image(data_dir() / "kodak" / a.image).pixels
    rate = rate_for(model, quality=a.quality)
    analysis = family.analyse(model, pixels)
    base = family.coded_cost(model, analysis, rate)
    rows = []
    for name, (bf16, compiled) in SETTINGS.items():
        schedule = Schedule(steps=a.steps, lr=0.01, bf16=bf16, compile=compiled)
        warm = time.perf_counter()
        family.FAMILY.refine(model, analysis, rate, 1, schedule=replace(schedule, steps=3))
        warm = time.perf_counter() - warm  # compilation (first call) or warm-up
        t0 = time.perf_counter()
        out = family.FAMILY.refine(model, analysis, rate, 1, schedule=schedule)
        seconds = (time.perf_counter() - t0) / a.steps
        rows.append((name, seconds, warm, family.coded_cost(model, out, rate)))
    print(f"Machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}.")
    print(f"Image {a.image} ({pixels.shape[1]}x{pixels.shape[0]}), model {a.model}, quality {a.quality:g}, "
          f"{a.steps} steps of lr 0.01 (the 8 hard-rounded checks included in the time).\n")
    print(f"Effort 0: cost {base[0]:.4f}, {base[1]:.4f} bpp, {base[2]:.2f} dB.\n")
    print("| setting | s / step | vs float32 eager | first call s | cost | bpp | PSNR dB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    ref = rows[0][1]
    for name, seconds, warm, (cost, bpp, psnr) in rows:
        print(f"| {name} | {seconds:.3f} | {seconds / ref:.2f} | {warm:.1f} | {cost:.4f} | {bpp:.4f} | {psnr:.2f} |")


if __name__ == "__main__":
    main()

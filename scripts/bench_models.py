"""Coding speed of candidate model sizes on this machine, as ratios to the shipped architecture
(hyperprior 128/192, GDN) measured in the same process: whole encode (analysis, entropy
parameters, range coding, container) and whole decode of a 768x512 image.

    python scripts/bench_models.py [--threads 2] [--repeats 3] > results/bench_models.md

Speed only (random weights code at a different rate than trained ones, so the entropy coding
share is indicative); whether a smaller model is worth shipping also needs its RD, from training.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior  # noqa: E402
from codec.pipeline.image import compress, decompress  # noqa: E402
from codec.settings import data_dir  # noqa: E402
from codec.pipeline.hyperprior import from_module  # noqa: E402


def timings(preset: str, pixels: np.ndarray, repeats: int) -> tuple[float, float]:
    torch.manual_seed(0)
    model = from_module(MeanScaleHyperprior(HyperpriorConfig.preset(preset)).eval(), f"bench-{preset}")
    compress(model, pixels)  # warm-up
    enc, dec = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        data = compress(model, pixels).data
        t1 = time.perf_counter()
        decompress(data, model)
        t2 = time.perf_counter()
        enc.append(t1 - t0)
        dec.append(t2 - t1)
    return float(np.median(enc)), float(np.median(dec))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--presets", default="base,small,small-gdn,base-relu,small-relu")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from PIL import Image

    pixels = np.asarray(Image.open(data_dir() / "kodak" / "kodim01.png").convert("RGB"))
    print(f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{a.threads} threads; image {pixels.shape[1]}x{pixels.shape[0]}; median of {a.repeats}.\n")
    print("| config | N/M | act | encode s | decode s | encode vs base | decode vs base |")
    print("|---|---|---|---:|---:|---:|---:|")
    base = None
    for name in a.presets.split(","):
        cfg = HyperpriorConfig.preset(name)
        e, d = timings(name, pixels, a.repeats)
        base = base or (e, d)
        print(f"| {name} | {cfg.N}/{cfg.M} | {cfg.act} | {e:.3f} | {d:.3f} | {base[0] / e:.2f}x | {base[1] / d:.2f}x |",
              flush=True)


if __name__ == "__main__":
    main()

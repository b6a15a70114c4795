"""M2T on Kodak: real files at the model's S and at other step counts, encode and decode seconds
with and without key/value caching, against the autoencoder's own hyperprior in the same process.

    python scripts/bench_m2t.py --model m2t-ID [--limit 24] [--qualities 20,60,90] [--steps 4,8,12] \
        [--threads 2] > results/bench_m2t.md

Every file is decoded and its symbols checked against the encoder's. Times are seconds per image
on this machine (model load excluded); speed-ups are ratios within this run.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from codec.metrics import psnr  # noqa: E402
from codec.pipeline import m2t as m2t_pipeline  # noqa: E402
from codec.pipeline.image import compress, decompress  # noqa: E402
from codec.pipeline.rate import rate_for  # noqa: E402
from codec.container import read_container  # noqa: E402
from codec.settings import data_dir  # noqa: E402
from codec.weights import load_model  # noqa: E402


def with_steps(model, steps: int):
    """The same weights coding with S = steps (the schedule is derived from S)."""
    tf64 = copy.deepcopy(model.tf64)
    tf64.config = dataclasses.replace(tf64.config, steps=steps)
    return dataclasses.replace(model, tf64=tf64)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--limit", type=int, default=24)
    p.add_argument("--qualities", default="20,60,90")
    p.add_argument("--steps", default="4,8,12")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from PIL import Image

    model = load_model(a.model)
    paths = sorted((data_dir() / "kodak").glob("*.png"))[: a.limit]
    images = [np.asarray(Image.open(q).convert("RGB")) for q in paths]
    qualities = [float(v) for v in a.qualities.split(",")]
    step_counts = [int(v) for v in a.steps.split(",")]
    print(f"Model {a.model} (S={model.tf64.config.steps}, P={model.tf64.config.patch}); {len(images)} Kodak images; "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {a.threads} threads.\n")
    print("| S | quality | bpp | PSNR dB | encode s | decode s (cached) | decode s (no cache) | cache speed-up |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s_count in step_counts:
        m = with_steps(model, s_count)
        for q in qualities:
            bpp, ps, enc_t, dec_t, dec_nc = [], [], [], [], []
            for px in images:
                t0 = time.perf_counter()
                enc = compress(m, px, quality=q)
                t1 = time.perf_counter()
                dec = decompress(enc.data, m)
                t2 = time.perf_counter()
                container = read_container(enc.data)
                t3 = time.perf_counter()
                pix_nc, sym_nc = m2t_pipeline.decode(m, container, rate_for(m, quality=q), cache=False)
                t4 = time.perf_counter()
                if not (np.array_equal(dec.y_sym, enc.y_sym) and np.array_equal(sym_nc, enc.y_sym)):
                    raise SystemExit(f"symbols differ after decoding (S={s_count}, q={q})")
                bpp.append(len(enc.data) * 8 / (px.shape[0] * px.shape[1]))
                ps.append(psnr(px, dec.pixels))
                enc_t.append(t1 - t0)
                dec_t.append(t2 - t1)
                dec_nc.append(t4 - t3)
            print(f"| {s_count} | {q:g} | {np.mean(bpp):.4f} | {np.mean(ps):.2f} | {np.mean(enc_t):.3f} | "
                  f"{np.mean(dec_t):.3f} | {np.mean(dec_nc):.3f} | {np.mean(dec_nc) / np.mean(dec_t):.2f}x |", flush=True)


if __name__ == "__main__":
    main()

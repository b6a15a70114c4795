"""Speed of the overfitted family's encoder: seconds per optimisation step (forward, backward, Adam)
on a Kodak-sized image, float32 eager with glibc's default heap (the baseline, run first in the
same process) against the encoder's settings: freed memory retained (codec.pipeline.allocator),
float32 eager and through torch.compile, and bfloat16 autocast eager and compiled where the CPU
computes bfloat16 natively (codec.pipeline.precision; --bf16 yes to force), per decoder size; and
the decode time of one file in a fresh process against the hyperprior's and Pillow's AVIF / WebP
decoders (start-up included).

    python scripts/bench_overfit.py [--image PATH] [--sizes small,medium,large] [--steps 5] [--threads 2]
                                    [--bf16 auto|yes|no]
                                    [--decode FILE_OF_THE_SAME_IMAGE]

Prints a markdown table (machine stated); results/overfit/speed.md holds the committed run.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def step_seconds(pixels, size: str, bf16: bool, compiled: bool, steps: int) -> tuple[float, float]:
    """(seconds per step, seconds of the first step: compiling included) of the encoder's relaxed
    step (Fit.relaxed_loss, backward, Adam)."""
    import torch

    from codec.models.overfit import PRESETS
    from codec.pipeline import overfit_fit
    from codec.pipeline.overfit_fit import Fit, FitSchedule

    fit = Fit(pixels, PRESETS[size], 0.0067, FitSchedule(bf16=bf16, compile=compiled, iterations=overfit_fit.COMPILE_FROM))
    model = fit.start(0)
    loss_fn = fit.relaxed_loss(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        loss = loss_fn(model.canvas, *fit.proxy_inputs(model, 0.5))
        opt.zero_grad()
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    step()  # warm-up (allocations, compiling)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps, first


def decode_seconds(data: bytes, runs: int = 3) -> float:
    """Wall time of `codec decode` in a fresh process (start-up and imports included), best of runs."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "x.bin", Path(tmp) / "x.png"
        src.write_bytes(data)
        best = float("inf")
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([str(Path(sys.executable).with_name("codec")), "decode", str(src), "-o", str(out), "--force"],
                           check=True, capture_output=True, cwd=REPO)
            best = min(best, time.perf_counter() - t0)
    return best


def pillow_decode_seconds(data: bytes, runs: int = 3) -> float:
    code = "import io,sys; from PIL import Image; Image.open(io.BytesIO(sys.stdin.buffer.read())).convert('RGB').load()"
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], input=data, check=True, capture_output=True)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--image", default=str(REPO.parent / "shared" / "data" / "kodak" / "kodim19.png"))
    p.add_argument("--sizes", default="small,medium,large")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bf16", choices=("auto", "yes", "no"), default="auto",
                   help="measure the bfloat16 steps too (auto: where the CPU computes bfloat16 natively)")
    p.add_argument("--decode", default="", help="an overfitted file of --image: its decode time against the hyperprior's file of the same image")
    a = p.parse_args()
    import numpy as np
    import torch
    from PIL import Image

    from codec.pipeline import allocator
    from codec.pipeline.precision import native_bf16

    torch.set_num_threads(a.threads)
    bf16 = a.bf16 == "yes" or (a.bf16 == "auto" and native_bf16())
    pixels = np.array(Image.open(a.image).convert("RGB"))
    if pixels.shape[0] > pixels.shape[1]:
        pixels = pixels.transpose(1, 0, 2).copy()
    h, w = pixels.shape[:2]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{a.threads} threads; image {Path(a.image).name} {w}x{h}; {a.steps} steps after one warm-up\n")
    print(f"CPU: {torch.backends.cpu.get_cpu_capability()}, native bfloat16 (AVX-512 BF16 or AMX): {native_bf16()}\n")
    print("| size | MAC/px | float32, glibc's heap (baseline) | float32 | float32 compiled | bfloat16 | bfloat16 compiled | compile s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    from codec.models.overfit import PRESETS, grid_count

    for size in filter(None, a.sizes.split(",")):  # --sizes "": the decode times only
        with allocator.glibc_heap():  # the baseline
            base, _ = step_seconds(pixels, size, False, False, a.steps)
        f32, _ = step_seconds(pixels, size, False, False, a.steps)  # Fit retains freed memory from here on
        f32c, first = step_seconds(pixels, size, False, True, a.steps)
        times, compile_s = [f32, f32c], first - f32c
        if bf16:
            times.append(step_seconds(pixels, size, True, False, a.steps)[0])
            comp, first = step_seconds(pixels, size, True, True, a.steps)
            times, compile_s = times + [comp], first - comp
        cells = " | ".join(f"{t:.3f} ({base / t:.2f}x)" for t in times) + " | - | -" * (not bf16)
        macs = PRESETS[size].macs_per_pixel(grid_count(h, w))
        print(f"| {size} | {macs:.0f} | {base:.3f} | {cells} | {compile_s:.0f} |")
    if a.decode:
        data = Path(a.decode).read_bytes()
        buf = {}
        for fmt in ("AVIF", "WEBP"):
            b = io.BytesIO()
            Image.fromarray(pixels).save(b, fmt, quality=50)
            buf[fmt] = b.getvalue()
        from codec.pipeline.image import compress, load_model

        in_process(data)
        hp = compress(load_model(None), pixels).data
        ours, base = decode_seconds(data), decode_seconds(hp)
        print(f"\ndecode in a fresh process (best of 3): overfitted {ours:.2f} s, hyperprior {base:.2f} s "
              f"({ours / base:.2f}x), Pillow AVIF {pillow_decode_seconds(buf['AVIF']):.2f} s, "
              f"Pillow WebP {pillow_decode_seconds(buf['WEBP']):.2f} s")


def in_process(data: bytes, runs: int = 3) -> None:
    """The decoder's parts in this process (best of runs): the ARM's wavefronts, the upsampling, and
    the synthesis on one thread (the baseline) against bands on two threads."""
    from codec.container import read_container
    from codec.entropy import arm as arm_int
    from codec.models import overfit_int
    from codec.pipeline import overfit

    c = read_container(data)
    chunk = overfit.unpack_nets(c.get(overfit.NETS))
    nets = overfit.networks_of(chunk)
    shapes = overfit_int.grid_shapes(c.header.height, c.header.width, chunk.grids)

    def best(fn):
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    grids = arm_int.decompress(c.get(overfit.YSTR), shapes, nets.arm, chunk.tile)
    boxes = [(h, w) for _, _, _, h, w in arm_int.tile_boxes(shapes, chunk.tile)]
    arm = best(lambda: arm_int.decompress(c.get(overfit.YSTR), shapes, nets.arm, chunk.tile))
    up = best(lambda: overfit_int.dense(nets, [g.astype("float64") for g in grids]))
    one = best(lambda: overfit_int.synthesize(nets, grids, threads=1))
    two = best(lambda: overfit_int.synthesize(nets, grids, threads=2))
    print(f"\ndecode in this process (best of {runs}): ARM {arm:.3f} s ({len(arm_int.Canvas(boxes, nets.arm.offsets).starts) - 1} "
          f"wavefronts), upsampling {up:.3f} s, upsampling + synthesis on 1 thread {one:.3f} s, in bands on 2 threads "
          f"{two:.3f} s ({one / two:.2f}x); total {arm + two:.3f} s")


if __name__ == "__main__":
    main()

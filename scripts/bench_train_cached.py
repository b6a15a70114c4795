"""Training VCT from cached latents against training from pixels (issue 18): the seconds of one
training step on runs of L frames, in the same process, alternating rounds.

    python scripts/bench_train_cached.py [--length 6] [--batch 8] [--crop 128] [--state 32] [--steps 6]
        [--rounds 3] [--threads 1]

"pixels": each step runs the frozen image model's analysis (g_a, then h_a and h_s for the side
information) on the run's frames, then the entropy model's loss, backward and Adam step; "cached":
the same step on latents and side information computed once beforehand
(codec.train.clip_latents). The frames are crops of a real clip (DATA/video); the model is the
shipped default video model's transformer with a fresh recurrent state of --state channels.
Prints a table with the machine; the ratio is the speed-up per step.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return platform.processor()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--length", type=int, default=6)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--state", type=int, default=32)
    p.add_argument("--steps", type=int, default=6, help="steps per round and mode")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    from codec.models.vct import VCT
    from codec.pipeline.video import load_video_model
    from codec.settings import data_dir
    from codec.train.clip_latents import analyse
    from codec.train.clips import clip_frames, crop_at
    from codec.train.video import run_loss

    model = load_video_model(None)
    module = model.hp.module
    clip = data_dir() / "video" / "derf_foreman_cif.mp4"
    frames = []
    for i, f in enumerate(clip_frames(clip)):
        if i >= 40 + a.batch * a.length:
            break
        if i >= 40:  # after the evaluation window
            frames.append(crop_at(f, 32, 64, a.crop))
    pixels = np.stack(frames).reshape(a.batch, a.length, a.crop, a.crop, 3)
    cached = analyse(module, list(pixels.reshape(-1, a.crop, a.crop, 3)), 8, None)
    shape = (a.batch, a.length)
    y_cached = cached["y"].float().view(*shape, *cached["y"].shape[1:])
    side_cached = cached["side"].float().view(*shape, *cached["side"].shape[1:])
    tf = VCT(dataclasses.replace(model.tf.config, state=a.state))
    tf.load_state_dict(model.tf.state_dict(), strict=False)
    opt = torch.optim.Adam(tf.parameters(), lr=1e-5)
    log_step = torch.ones(a.batch)

    def step(y, side):
        loss = run_loss(tf, y, log_step, side).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def from_pixels():
        x = torch.from_numpy(pixels.reshape(-1, a.crop, a.crop, 3)).permute(0, 3, 1, 2).float().div(255.0)
        with torch.no_grad():
            y = module.g_a(x)
            med = module.z_density.medians.view(1, -1, 1, 1)
            z = torch.round(module.h_a(y) - med)
            mean, scale = module.entropy_parameters(z + med)
        step(y.view(*shape, *y.shape[1:]), torch.stack([mean, scale], 1).view(*shape, 2, *y.shape[1:]))

    def from_cache():
        step(y_cached, side_cached)

    from_cache()  # warm-up
    from_pixels()
    times = {"cached": [], "pixels": []}
    for _ in range(a.rounds):
        for name, fn in (("pixels", from_pixels), ("cached", from_cache)):
            t0 = time.perf_counter()
            for _ in range(a.steps):
                fn()
            times[name].append((time.perf_counter() - t0) / a.steps)
    px, ca = statistics.median(times["pixels"]), statistics.median(times["cached"])
    print(f"Machine: {platform.machine()} {_cpu_name()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {a.threads} thread(s); runs of {a.length} frames of {a.crop}x{a.crop}, batch "
          f"{a.batch}, recurrent state {a.state}; {a.rounds} rounds x {a.steps} steps, medians")
    print("| training step | seconds (rounds) | steps / minute |")
    print("|---|---|---:|")
    for name, t in (("from pixels (g_a, h_a, h_s each step)", times["pixels"]), ("from cached latents", times["cached"])):
        print(f"| {name} | {statistics.median(t):.3f} ({', '.join(f'{v:.3f}' for v in t)}) | {60 / statistics.median(t):.1f} |")
    print(f"\nspeed-up per step: {px / ca:.2f}x")


if __name__ == "__main__":
    main()

"""Which distribution the overfitted family's ARM should predict (issue 15: "try a mixture head,
keep what measures best"): the same fits of the same crops of training photos with the ARM's
output layer giving a Laplace (shipped), a Gaussian, or a two-component Laplace mixture (the GIVT
idea: weights, means and scales of a mixture over the value).

    python scripts/overfit_heads.py --images bsd68_101085,bsd68_102061 --qualities 40,60,80 \\
        --steps 1200 --crop 256 --heads laplace,gaussian,mix2 --out results/overfit/heads.jsonl

Each (image, quality, head) is one fit from scratch (no shipped start: the starts are Laplace
ARMs) on one thread; rows are appended to --out as JSON lines and skipped when already there
(resumable). The figure of merit is the hard-rounded cost lambda x MSE + bpp with the float ARM's
rate of the rounded latents (the networks' bytes left out: the mixture's output layer carries
3 (K + 1) more parameters, about 20 bytes for the small decoder). The summary gives, per head,
the mean change of that cost against the Laplace head.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _heads():
    import torch
    import torch.nn.functional as F
    from torch import nn

    from codec.models import overfit as om

    class Head(nn.Module):
        """ARM with `outputs` values per latent (residual hidden layers as om.Arm)."""

        def __init__(self, k: int, hidden: int, outputs: int):
            super().__init__()
            self.hidden = nn.ModuleList(nn.Linear(k, k) for _ in range(hidden))
            self.out = nn.Linear(k, outputs)
            for layer in self.hidden:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
            nn.init.normal_(self.out.weight, std=1.0 / k ** 2)
            nn.init.zeros_(self.out.bias)
            if outputs == 5:  # mixture: one narrow and one wide component to break the symmetry
                with torch.no_grad():
                    self.out.bias[2], self.out.bias[3] = -1.0, 1.0

        def forward(self, ctx):
            x = ctx
            for layer in self.hidden:
                x = F.relu(layer(x) + x)
            return self.out(x).float()

    def gaussian_bits(y, mu, log_scale):
        s = torch.exp(log_scale.clamp(om.LOG_MIN, om.LOG_MAX)) * 2 ** 0.5
        d = (y - mu).abs()
        p = 0.5 * (torch.special.erfc((d - 0.5) / s) - torch.special.erfc((d + 0.5) / s))
        return -torch.log2(p.clamp_min(2.0 ** -24))

    def bits(head: str, y, out):
        if head == "laplace":
            return om.laplace_bits(y, out[:, 0], out[:, 1])
        if head == "gaussian":
            return gaussian_bits(y, out[:, 0], out[:, 1])
        w = torch.sigmoid(out[:, 4])
        p = w * torch.exp2(-om.laplace_bits(y, out[:, 0], out[:, 2])) + \
            (1 - w) * torch.exp2(-om.laplace_bits(y, out[:, 1], out[:, 3]))
        return -torch.log2(p.clamp_min(2.0 ** -24))

    class HeadModel(om.OverfitModel):
        head = "laplace"

        def __init__(self, config, height, width, seed=0):
            super().__init__(config, height, width, seed)
            self.arm = Head(config.arm_context, config.arm_hidden, 5 if self.head == "mix2" else 2)

        def rate_bits(self, q):
            up, side = self.layout.reach
            out = self.arm(self.contexts(q))
            target = q[up:, side:q.shape[1] - side].reshape(-1)
            valid = self.mask[up:, side:q.shape[1] - side].reshape(-1)
            return (bits(self.head, target, out) * valid).sum()

    return HeadModel


def fit_row(job: dict) -> dict:
    import math

    import torch

    from codec.io import centre_crop, read_image
    from codec.models.overfit import PRESETS
    from codec.pipeline import overfit
    from codec.pipeline.overfit_fit import Fit, FitSchedule

    torch.set_num_threads(1)
    HeadModel = _heads()
    HeadModel.head = job["head"]
    x = centre_crop(read_image(job["path"]).pixels, job["crop"])
    rate = overfit.rate_for(job["quality"])

    class HeadFit(Fit):
        def start(self, seed):
            model = HeadModel(self.config, self.h, self.w, seed=seed)
            with torch.no_grad():
                model.synthesis.mlp[-1].bias.copy_(self.x.mean(dim=(1, 2)))
            return model

    t0 = time.perf_counter()
    fit = HeadFit(x, PRESETS[job["size"]], rate.lam, FitSchedule(iterations=job["steps"], candidates=1, warmup=0))
    model = fit.run()
    cost, bpp, mse = fit.hard_cost(model)
    return {**job, "cost": cost, "bpp": bpp, "psnr": 10 * math.log10(255.0 ** 2 / mse),
            "seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/train")
    p.add_argument("--images", default="bsd68_101085,bsd68_102061")
    p.add_argument("--qualities", default="40,60,80")
    p.add_argument("--heads", default="laplace,gaussian,mix2")
    p.add_argument("--size", default="small")
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", default="results/overfit/heads.jsonl")
    args = p.parse_args(argv)
    out = Path(args.out)
    done = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    key = ("image", "quality", "head", "size", "steps", "crop")
    have = {tuple(r[k] for k in key) for r in done}
    jobs = []
    for name in args.images.split(","):
        path = next(Path(args.data).glob(name + ".*"))
        for q in map(float, args.qualities.split(",")):
            for head in args.heads.split(","):
                job = {"image": name, "quality": q, "head": head, "size": args.size, "steps": args.steps,
                       "crop": args.crop, "path": str(path)}
                if tuple(job[k] for k in key) not in have:
                    jobs.append(job)
    with ProcessPoolExecutor(args.jobs) as pool:
        for row in pool.map(fit_row, jobs):
            print(json.dumps(row), flush=True)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            done.append(row)
    summarise(done, args)
    return 0


def summarise(rows: list[dict], args) -> None:
    base = {(r["image"], r["quality"]): r["cost"] for r in rows
            if r["head"] == "laplace" and r["size"] == args.size and r["steps"] == args.steps}
    print(f"| head | fits | mean cost change vs Laplace | ({args.size}, {args.steps} steps, {args.crop} crops) |")
    print("|---|---:|---:|---|")
    for head in args.heads.split(","):
        changes = [r["cost"] / base[(r["image"], r["quality"])] - 1 for r in rows
                   if r["head"] == head and r["size"] == args.size and r["steps"] == args.steps
                   and (r["image"], r["quality"]) in base]
        if changes:
            print(f"| {head} | {len(changes)} | {100 * sum(changes) / len(changes):+.2f}% | "
                  + ", ".join(f"{100 * c:+.1f}%" for c in changes) + " |")


if __name__ == "__main__":
    raise SystemExit(main())

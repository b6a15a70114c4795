"""What a start (codec.pipeline.overfit_start) buys the overfitted encoder: the same fits of the same
crops with and without it, coded into real files; BD-rate and coded cost of one against the other.

    python scripts/eval_overfit_start.py --start RUN/checkpoint.pt --images kodim01,kodim04 \\
        --qualities 40,60,80 --steps 1200 --crop 256 --jobs 2

Other settings of the fit are compared the same way: `--variant NAME:field=value,...` defines an arm
NAME that fits from scratch with those FitSchedule fields changed (numbers, words, or a/b pairs), and
an arm NAME@start the same from --start's networks, e.g.

    python scripts/eval_overfit_start.py --start none --variant gauss:noise=gaussian \
        --arms scratch,gauss --images kodim19 --crop 256 --steps 1500

Each (image, quality, arm) is one fit on one thread, `--jobs` at a time; every row is printed as a
JSON line and appended to --out (rows already there are not fitted again: resumable). The summary
gives, per image, the BD-rate of each arm against the first (file bytes, PSNR) and the mean ratio of
their coded costs lambda x MSE + bpp (whole files: the networks' bytes weigh more on a crop than on
a whole image, in every arm alike). BD-rates by codec.eval.bd (PCHIP over the shared PSNR range).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def read_start(path: str) -> dict | None:
    import torch
    from safetensors.torch import load_file

    if path in ("", "none"):
        return None
    if path.endswith(".safetensors"):
        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state["theta"] if "theta" in state else state  # a run's checkpoint, or the tensors alone


def fit_row(job: dict) -> dict:
    import numpy as np
    import torch

    from codec.io import centre_crop, read_image
    from codec.metrics import bpp, psnr
    from codec.models.overfit import PRESETS
    from codec.pipeline import overfit
    from codec.pipeline.image import decompress, load_model
    from codec.pipeline.overfit_fit import Fit, FitSchedule

    torch.set_num_threads(1)
    x = centre_crop(read_image(job["path"]).pixels, job["crop"])
    rate = overfit.rate_for(job["quality"])
    t0 = time.perf_counter()
    schedule = FitSchedule(iterations=job["steps"], candidates=1, warmup=0, **job.get("variant", {}))
    fit = Fit(x, PRESETS[job["size"]], rate.lam, schedule,
              start=read_start(job["start"]) if job["arm"] == "start" or job["arm"].endswith("@start") else None)
    a = overfit.Analysis(x, fit.run(), (rate.lam, None, 0))
    seconds = time.perf_counter() - t0
    data = overfit.encode(load_model("overfit"), a, rate).data
    y = decompress(data).pixels
    mse = float(np.mean((y.astype(np.float64) - x) ** 2))
    rate_bpp = bpp(len(data), *x.shape[:2])
    return {**{k: job[k] for k in ("image", "quality", "arm", "steps", "crop", "size")}, "bytes": len(data),
            "bpp": round(rate_bpp, 5), "psnr": round(psnr(x, y), 4),
            "cost": round(rate.lam * mse + rate_bpp, 5), "fit_s": round(seconds, 1)}


def parse_variant(text: str) -> tuple[str, dict]:
    """NAME:field=value,field=value -> (NAME, FitSchedule overrides); a/b is a pair of floats."""
    from dataclasses import fields

    from codec.pipeline.overfit_fit import FitSchedule

    name, _, body = text.partition(":")
    known = {f.name for f in fields(FitSchedule)}
    out = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition("=")
        if key not in known:
            raise SystemExit(f"error: --variant {name}: FitSchedule has no field {key!r}")
        if "/" in value:
            out[key] = tuple(float(v) for v in value.split("/"))
        else:
            try:
                out[key] = float(value) if "." in value or "e" in value else int(value)
            except ValueError:
                out[key] = value
    return name, out


def image_file(folder: Path, stem: str) -> Path:
    """folder/stem.png, or the one file folder/stem.* (the training photos are PNG or JPEG)."""
    if (folder / f"{stem}.png").exists():
        return folder / f"{stem}.png"
    found = sorted(folder.glob(f"{stem}.*"))
    if len(found) != 1:
        raise SystemExit(f"error: {folder}/{stem}.*: {len(found)} files")
    return found[0]


def summary(rows: list[dict], arms: list[str]) -> dict:
    """Per image and arm: BD-rate and mean cost ratio against the first arm; then their means."""
    from codec.eval.bd import delta

    base, others = arms[0], arms[1:]
    out = {}
    for image in sorted({r["image"] for r in rows}):
        by_arm = {arm: sorted((r for r in rows if r["image"] == image and r["arm"] == arm), key=lambda r: r["quality"])
                  for arm in arms}
        s = by_arm[base]
        for arm in others:
            t = by_arm[arm]
            if not s or [r["quality"] for r in s] != [r["quality"] for r in t]:
                continue
            bd = delta([r["bpp"] for r in s], [r["psnr"] for r in s], [r["bpp"] for r in t], [r["psnr"] for r in t]).bd_rate \
                if len(s) > 1 else None
            out.setdefault(arm, {})[image] = {"bd_rate_pct": None if bd is None else round(bd, 2),
                                              "cost_ratio": round(sum(b["cost"] / a["cost"] for a, b in zip(s, t)) / len(s), 4)}
    for arm, images in out.items():
        means = {}
        for k in ("bd_rate_pct", "cost_ratio"):
            values = [v[k] for v in images.values() if v[k] is not None]
            means[k] = round(sum(values) / len(values), 3) if values else None
        images["mean"] = means
    return {f"{arm} vs {base}": images for arm, images in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--start", default="none", help="a run's checkpoint.pt or a start .safetensors (arm start)")
    ap.add_argument("--images", default="kodim01,kodim04,kodim13,kodim22")
    ap.add_argument("--data", default="", help="folder of the images (default: the kodak/ folder of $CODEC_DATA)")
    ap.add_argument("--qualities", default="40,60,80")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--crop", type=int, default=256, help="centre crop side (0: whole images)")
    ap.add_argument("--size", default="small")
    ap.add_argument("--arms", default="scratch,start",
                    help="arms to fit, the first the baseline: scratch, start, a --variant's NAME or NAME@start")
    ap.add_argument("--variant", action="append", default=[], help="NAME:field=value,... (FitSchedule fields)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="", help="JSON-lines file of the rows (appended; rows there are kept)")
    args = ap.parse_args()
    from codec.settings import data_dir

    folder = Path(args.data) if args.data else data_dir() / "kodak"
    rows = [json.loads(line) for line in Path(args.out).read_text().splitlines()] if args.out and Path(args.out).exists() else []
    variants = dict(parse_variant(v) for v in args.variant)
    arms = args.arms.split(",")
    unknown = [a for a in arms if a not in ("scratch", "start") and a.removesuffix("@start") not in variants]
    if unknown:
        raise SystemExit(f"error: arm {unknown[0]!r} is neither scratch, start nor a --variant")
    done = {(r["image"], r["quality"], r["arm"]) for r in rows}
    jobs = [{"image": i, "path": str(image_file(folder, i)), "quality": float(q), "arm": arm, "steps": args.steps,
             "crop": args.crop, "size": args.size, "start": args.start, "variant": variants.get(arm.removesuffix("@start"), {})}
            for i in args.images.split(",") for q in args.qualities.split(",") for arm in arms
            if (i, float(q), arm) not in done]
    with ProcessPoolExecutor(args.jobs) as pool:
        for row in pool.map(fit_row, jobs):
            print(json.dumps(row), flush=True)
            rows.append(row)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
    import platform

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    print(json.dumps({"machine": cpu, "variants": variants, "summary": summary(rows, arms)}, indent=1))


if __name__ == "__main__":
    main()

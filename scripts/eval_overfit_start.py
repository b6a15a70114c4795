"""What a start (codec.pipeline.overfit_start) buys the overfitted encoder: the same fits of the same
crops with and without it, coded into real files; BD-rate and coded cost of one against the other.

    python scripts/eval_overfit_start.py --start RUN/checkpoint.pt --images kodim01,kodim04 \\
        --qualities 40,60,80 --steps 1200 --crop 256 --jobs 2

Each (image, quality, arm) is one fit on one thread, `--jobs` at a time; every row is printed as a
JSON line and appended to --out (rows already there are not fitted again: resumable). The summary
gives, per image, the BD-rate of the start against scratch (file bytes, PSNR) and the mean coded
cost lambda x MSE + bpp (whole files: the networks' bytes weigh more on a crop than on a whole
image, in both arms alike). BD-rates by codec.eval.bd (PCHIP over the shared PSNR range).
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
    fit = Fit(x, PRESETS[job["size"]], rate.lam, FitSchedule(iterations=job["steps"], candidates=1, warmup=0),
              start=read_start(job["start"]) if job["arm"] == "start" else None)
    a = overfit.Analysis(x, fit.run(), (rate.lam, None, 0))
    seconds = time.perf_counter() - t0
    data = overfit.encode(load_model("overfit"), a, rate).data
    y = decompress(data).pixels
    mse = float(np.mean((y.astype(np.float64) - x) ** 2))
    rate_bpp = bpp(len(data), *x.shape[:2])
    return {**{k: job[k] for k in ("image", "quality", "arm", "steps", "crop", "size")}, "bytes": len(data),
            "bpp": round(rate_bpp, 5), "psnr": round(psnr(x, y), 4),
            "cost": round(rate.lam * mse + rate_bpp, 5), "fit_s": round(seconds, 1)}


def summary(rows: list[dict]) -> dict:
    from codec.eval.bd import delta

    out = {}
    for image in sorted({r["image"] for r in rows}):
        arms = {arm: sorted((r for r in rows if r["image"] == image and r["arm"] == arm), key=lambda r: r["quality"])
                for arm in ("scratch", "start")}
        s, t = arms["scratch"], arms["start"]
        if not s or [r["quality"] for r in s] != [r["quality"] for r in t]:
            continue
        bd = delta([r["bpp"] for r in s], [r["psnr"] for r in s], [r["bpp"] for r in t], [r["psnr"] for r in t]).bd_rate
        out[image] = {"bd_rate_pct": None if bd is None else round(bd, 2),
                      "cost_ratio": round(sum(b["cost"] / a["cost"] for a, b in zip(s, t)) / len(s), 4)}
    if out:
        means = {}
        for k in ("bd_rate_pct", "cost_ratio"):
            values = [v[k] for v in out.values() if v[k] is not None]
            means[k] = round(sum(values) / len(values), 3) if values else None
        out["mean"] = means
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--start", required=True, help="a run's checkpoint.pt or a start .safetensors")
    ap.add_argument("--images", default="kodim01,kodim04,kodim13,kodim22")
    ap.add_argument("--data", default="", help="folder of the images (default: the kodak/ folder of $CODEC_DATA)")
    ap.add_argument("--qualities", default="40,60,80")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--crop", type=int, default=256, help="centre crop side (0: whole images)")
    ap.add_argument("--size", default="small")
    ap.add_argument("--arms", default="scratch,start", help="which arms to fit (rows of the other may be in --out)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="", help="JSON-lines file of the rows (appended; rows there are kept)")
    args = ap.parse_args()
    from codec.settings import data_dir

    folder = Path(args.data) if args.data else data_dir() / "kodak"
    rows = [json.loads(line) for line in Path(args.out).read_text().splitlines()] if args.out and Path(args.out).exists() else []
    done = {(r["image"], r["quality"], r["arm"]) for r in rows}
    jobs = [{"image": i, "path": str(folder / f"{i}.png"), "quality": float(q), "arm": arm, "steps": args.steps,
             "crop": args.crop, "size": args.size, "start": args.start}
            for i in args.images.split(",") for q in args.qualities.split(",") for arm in args.arms.split(",")
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
    print(json.dumps({"machine": cpu, "summary": summary(rows)}, indent=1))


if __name__ == "__main__":
    main()

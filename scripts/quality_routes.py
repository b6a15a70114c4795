"""What `-q` means across the zoo, from a measured sweep: where the high-rate model takes over from
the default one, and the reference quality that continues the default's scale there.

    bash scripts/quality_routes.sh                      # the sweep (codec eval, cached) and this
    python scripts/quality_routes.py RESULTS.json [--write]

The sweep codes the 8 fixed Kodak images with the default model (hyperprior-mse-l0067) and the
high-rate one (hyperprior-mse-l025) over quantisation steps. Here:
  * switch step: the largest step of the high-rate model whose mean PSNR beats the default model's
    at no more bytes (interpolated on the default's curve in log-bpp): from that rate up, the
    high-rate model is better at equal bytes;
  * switch quality q_s: the default model's quality at the bpp of that point (its scale is
    q = 60 - 20 log2(step));
  * reference R of the high-rate model: q = R - 20 log2(step) passes through q_s at the switch step.
Prints the table (mean bpp and PSNR per quality 0, 5, ..., 100 under the routes, and whether both
grow with q) and, with --write, stores {"routes", "reference"} under "quality" in weights/manifest.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LOW, HIGH = "hyperprior-mse-l0067", "hyperprior-mse-l025"
STEP_RANGE = (0.25, 8.0)


def curve(results: dict, model: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean bpp, mean PSNR) of `model`, steps descending (rates ascending)."""
    c = results["codecs"][f"ours:{model}"]["results"]
    order = np.argsort(c["quality"])[::-1]
    return (np.array(c["quality"], float)[order], np.array(c["bpp"], float)[order],
            np.array(c["psnr-rgb"], float)[order])


def at(steps: np.ndarray, values: np.ndarray, step: float) -> float:
    """`values` at `step`, interpolated in log-step (steps descending)."""
    return float(np.interp(-math.log2(step), -np.log2(steps), values))


def choose(results: dict) -> dict:
    s_lo, b_lo, p_lo = curve(results, LOW)
    s_hi, b_hi, p_hi = curve(results, HIGH)
    better = [i for i in range(len(s_hi))
              if b_hi[i] >= b_lo[0] and p_hi[i] > float(np.interp(math.log(b_hi[i]), np.log(b_lo), p_lo))]
    if not better:
        raise SystemExit("the high-rate model is never better at equal bytes in this sweep")
    i = better[0]  # largest step (lowest rate) where it wins; every smaller step wins too (checked below)
    if better != list(range(i, len(s_hi))):
        print(f"warning: the high-rate model wins at steps {s_hi[better].tolist()}, not at every step after the first")
    switch_step, switch_bpp = float(s_hi[i]), float(b_hi[i])
    step_lo = 2 ** float(np.interp(math.log(switch_bpp), np.log(b_lo), np.log2(s_lo)))  # default's step at that bpp
    q_switch = round(60 - 20 * math.log2(step_lo), 1)
    reference = round(q_switch + 20 * math.log2(switch_step), 1)
    return {"routes": [{"model": LOW, "up_to": q_switch}, {"model": HIGH, "up_to": 100}],
            "reference": {HIGH: reference}, "measured": {"switch_step": switch_step, "switch_bpp": round(switch_bpp, 4)}}


def table(results: dict, chosen: dict) -> list[tuple[float, str, float, float, float]]:
    """(q, model, step, mean bpp, mean PSNR) for q = 0, 5, ..., 100 under the routes."""
    curves = {m: curve(results, m) for m in (LOW, HIGH)}
    rows = []
    for q in range(0, 101, 5):
        model = LOW if q <= chosen["routes"][0]["up_to"] else HIGH
        ref = chosen["reference"].get(model, 60.0)
        step = min(STEP_RANGE[1], max(STEP_RANGE[0], 2 ** ((ref - q) / 20)))
        s, b, p = curves[model]
        inside = s.min() <= step <= s.max()
        rows.append((q, model, step, at(s, b, step) if inside else float("nan"), at(s, p, step) if inside else float("nan")))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--write", action="store_true", help="store the table in weights/manifest.json")
    args = ap.parse_args()
    results = json.loads(args.results.read_text())
    chosen = choose(results)
    print(json.dumps(chosen))
    rows = table(results, chosen)
    print("\n| q | model | step | mean bpp | mean PSNR |\n|---:|---|---:|---:|---:|")
    for q, m, s, b, p in rows:
        print(f"| {q} | {m} | {s:.3f} | {b:.4f} | {p:.2f} |")
    finite = [(b, p) for _, _, _, b, p in rows if np.isfinite(b)]
    monotone = all(b2 > b1 and p2 > p1 for (b1, p1), (b2, p2) in zip(finite, finite[1:]))
    print(f"\nmonotone in bytes and PSNR over the measured range: {monotone} "
          f"({len(finite)} of {len(rows)} qualities inside the sweep)")
    if args.write:
        from codec.zoo import QUALITY, read_manifest, write_manifest

        manifest = read_manifest(REPO / "weights")
        manifest[QUALITY] = {"routes": chosen["routes"], "reference": chosen["reference"],
                             "measured": dict(chosen["measured"], images=results["images"], monotone=monotone)}
        write_manifest(manifest, REPO / "weights")
        print("written to weights/manifest.json")


if __name__ == "__main__":
    main()

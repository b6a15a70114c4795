"""The effort table of an evaluation: each level's BD-rate (PSNR) against effort 0, AVIF (same run)
and a published curve, and its encode time per image as a ratio to AVIF's encoder in the same run.

    python scripts/effort_table.py results/effort/results.json [--published vtm]
    python scripts/effort_table.py --per-image results/effort/cache

Reads the results.json that `codec eval` wrote (scripts/eval_effort.sh); prints a markdown table.
`--per-image CACHE` reads the cached rows instead (a run still going writes no results.json): each
image's BD-rate of every effort level against effort 0 of the same model, for the images whose
rows are all measured, and their mean.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codec.eval import published  # noqa: E402
from codec.eval.bd import delta  # noqa: E402


def _bd(anchor: dict, test: dict) -> str:
    d = delta(anchor["bpp"], anchor["psnr-rgb"], test["bpp"], test["psnr-rgb"])
    return "-" if d.bd_rate is None or np.isnan(d.bd_rate) else f"{d.bd_rate:+.1f}%"


def per_image(cache: Path) -> None:
    curves: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: {"bpp": [], "psnr-rgb": []})
    for path in sorted(cache.glob("*.json")):
        row = json.loads(path.read_text())
        if row["codec"].startswith("ours:"):
            model, _, effort = row["codec"][len("ours:"):].partition(";effort=")
            curve = curves[(row["image"], f"{model} {effort or '0'}")]
            curve["bpp"].append(row["bpp"])
            curve["psnr-rgb"].append(row["psnr-rgb"])
    print("| image | model | effort | points | BD-rate vs effort 0 |")
    print("|---|---|---:|---:|---:|")
    means: dict[str, list[float]] = defaultdict(list)
    for (image, name), curve in sorted(curves.items()):
        model, effort = name.rsplit(" ", 1)
        base = curves.get((image, f"{model} 0"))
        if effort == "0" or base is None or len(curve["bpp"]) < len(base["bpp"]):
            continue
        d = delta(base["bpp"], base["psnr-rgb"], curve["bpp"], curve["psnr-rgb"]).bd_rate
        means[name].append(d)
        print(f"| {image} | {model} | {effort} | {len(curve['bpp'])} | {d:+.1f}% |")
    for name, values in sorted(means.items()):
        print(f"| mean of {len(values)} | {name.rsplit(' ', 1)[0]} | {name.rsplit(' ', 1)[1]} | | "
              f"{float(np.mean(values)):+.1f}% |")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, nargs="?")
    p.add_argument("--published", default="vtm")
    p.add_argument("--per-image", type=Path, metavar="CACHE")
    a = p.parse_args(argv)
    if a.per_image is not None:
        return per_image(a.per_image)
    if a.results is None:
        p.error("give a results.json or --per-image CACHE")
    r = json.loads(a.results.read_text())
    codecs = r["codecs"]
    ours = [c for c in codecs.values() if c["name"].startswith("ours:")]
    base = next(c for c in ours if not c["settings"].get("effort"))
    avif = codecs["avif"]
    key = f"published:{a.published}"
    pub = (r["published"].get(key) or published.load([a.published])[key])["results"]
    avif_enc = float(np.mean(avif["results"]["encoding_time"]))
    print(f"{len(r['images'])} images ({', '.join(r['images'])}); machine: {r['machine']['cpu']}, "
          f"{r['machine']['cpu_count']} cores, torch threads {r['machine']['torch_threads']}.\n")
    print(f"| effort | steps | BD-rate vs effort 0 | vs AVIF (same run) | vs {a.published} (published) "
          "| encode s/img | encode / AVIF encode | decode s/img |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in sorted(ours, key=lambda c: c["settings"].get("effort", 0)):
        res = c["results"]
        effort = c["settings"].get("effort", 0)
        steps = next(iter(c["settings"].get("effort_schedule", {}).values()), {}).get("steps", 1) if effort else 1
        enc = float(np.mean(res["encoding_time"]))
        print(f"| {effort} | {steps} | {_bd(base['results'], res) if effort else '0'} | {_bd(avif['results'], res)} "
              f"| {_bd(pub, res)} | {enc:.1f} | {enc / avif_enc:.0f}x | {float(np.mean(res['decoding_time'])):.2f} |")
    print(f"\nAVIF: {avif_enc:.2f} s/img encode; its own BD-rate vs {a.published}: {_bd(pub, avif['results'])}.")


if __name__ == "__main__":
    main()

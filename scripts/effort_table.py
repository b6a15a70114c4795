"""The effort table of an evaluation: each level's BD-rate (PSNR) against effort 0, AVIF (same run)
and a published curve, and its encode time per image as a ratio to AVIF's encoder in the same run.

    python scripts/effort_table.py results/effort/results.json [--published vtm]

Reads the results.json that `codec eval` wrote (scripts/eval_effort.sh); prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codec.eval import published  # noqa: E402
from codec.eval.bd import delta  # noqa: E402


def _bd(anchor: dict, test: dict) -> str:
    d = delta(anchor["bpp"], anchor["psnr-rgb"], test["bpp"], test["psnr-rgb"])
    return "-" if d.bd_rate is None or np.isnan(d.bd_rate) else f"{d.bd_rate:+.1f}%"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path)
    p.add_argument("--published", default="vtm")
    a = p.parse_args(argv)
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

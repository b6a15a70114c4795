"""Wall time of one command a user types, start-up included: `codec encode` / `codec decode` with the
default model as fresh processes, against Pillow's WebP and AVIF (quality 75 / 60) encoding and
decoding in fresh Python processes, the baseline run in the same command. Best of N runs.

    python scripts/bench_startup.py [IMAGE] [--runs 3]

Prints a markdown table (seconds, and the ratio to Pillow WebP) and the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PILLOW_ENCODE = "from PIL import Image; import sys; Image.open(sys.argv[1]).save(sys.argv[2], quality={q})"
PILLOW_DECODE = "from PIL import Image; import sys; Image.open(sys.argv[1]).load()"


def best(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image", nargs="?", default=str(REPO / "assets" / "coffee.png"))
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    codec = shutil.which("codec", path=str(Path(sys.executable).parent)) or "codec"
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        rows = []
        for name, q, suffix in (("WebP (Pillow)", 75, ".webp"), ("AVIF (Pillow)", 60, ".avif")):
            out = t / f"x{suffix}"
            enc = best([py, "-c", PILLOW_ENCODE.format(q=q), args.image, str(out)], args.runs)
            dec = best([py, "-c", PILLOW_DECODE, str(out)], args.runs)
            rows.append((name, enc, dec, out.stat().st_size))
        bitstream, back = t / "x.bin", t / "x.png"
        enc = best([codec, "encode", args.image, "-o", str(bitstream), "--force"], args.runs)
        dec = best([codec, "decode", str(bitstream), "-o", str(back), "--force"], args.runs)
        rows.append(("codec (default model)", enc, dec, bitstream.stat().st_size))
    base_enc, base_dec = rows[0][1], rows[0][2]
    from codec.eval.report import cpu_name

    print(f"Image: {args.image}. Machine: {cpu_name()}, {os.cpu_count()} cores; best of {args.runs} fresh processes.\n")
    print("| encoder | bytes | encode s | decode s | encode / decode vs WebP |")
    print("|---|---:|---:|---:|---|")
    for name, enc, dec, size in rows:
        print(f"| {name} | {size:,} | {enc:.2f} | {dec:.2f} | {enc / base_enc:.1f}x / {dec / base_dec:.1f}x |")


if __name__ == "__main__":
    main()

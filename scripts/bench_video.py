"""Video coding speed and memory against clip length: `codec encode` / `codec decode` of the first N
frames of a clip in fresh processes, peak RSS (ru_maxrss of the child) and frames per second.

    python scripts/bench_video.py [--clip ../shared/data/video/derf_foreman_cif.mp4] [--frames 16,64,160]

Memory must not grow with the number of frames (frames stream through both sides); the ratio of the
peak RSS of the longest run to the shortest is printed and written to results/bench_video.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from codec.settings import data_dir  # noqa: E402


def child(args: list[str]) -> tuple[dict, float]:
    """(the command's JSON, peak RSS in MiB of that child alone)."""
    exe = Path(sys.executable).parent / "codec"
    code = ("import json, resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
            "print(json.dumps({'rc': p.returncode, 'out': p.stdout, 'err': p.stderr,"
            "'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")
    res = json.loads(subprocess.run([sys.executable, "-c", code, str(exe), *args, "--json", "--force"],
                                    capture_output=True, text=True, check=True).stdout)
    if res["rc"] != 0:
        sys.exit(f"codec {' '.join(args)} failed: {res['err'].strip()}")
    return json.loads(res["out"]), res["rss"] / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", default=str(data_dir() / "video" / "derf_foreman_cif.mp4"))
    p.add_argument("--frames", default="16,64,160")
    p.add_argument("--quality", default="40")
    p.add_argument("--out", default=str(REPO / "results" / "bench_video.md"))
    a = p.parse_args()
    counts = [int(n) for n in a.frames.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            bin_path, mkv = Path(tmp) / f"c{n}.bin", Path(tmp) / f"c{n}.mkv"
            enc, enc_rss = child(["encode", a.clip, "-o", str(bin_path), "--frames", f"0:{n}", "-q", a.quality])
            dec, dec_rss = child(["decode", str(bin_path), "-o", str(mkv)])
            rows.append((n, enc, enc_rss, dec, dec_rss))
            print(f"{n} frames: encode {enc['encode_fps']:.2f} fps, peak RSS {enc_rss:.0f} MiB; "
                  f"decode {dec['decode_fps']:.2f} fps, peak RSS {dec_rss:.0f} MiB", flush=True)
    first, last = rows[0], rows[-1]
    lines = [
        "# Video coding speed and memory against clip length", "",
        f"`python scripts/bench_video.py --clip {Path(a.clip).name} --frames {a.frames} --quality {a.quality}`; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads default; "
        f"model {first[1]['model_id']}, {first[1]['width']}x{first[1]['height']}.", "",
        "| frames | encode fps | encode peak RSS MiB | decode fps | decode peak RSS MiB | bpp |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n, enc, er, dec, dr in rows:
        lines.append(f"| {n} | {enc['encode_fps']:.2f} | {er:.0f} | {dec['decode_fps']:.2f} | {dr:.0f} | {enc['bpp']:.4f} |")
    lines += ["", f"Peak RSS, {last[0]} frames against {first[0]}: encode x{last[2] / first[2]:.2f}, "
                  f"decode x{last[4] / first[4]:.2f} (frames stream: memory does not grow with the clip)."]
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-1:]))


if __name__ == "__main__":
    main()

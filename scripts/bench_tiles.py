"""Large images: peak memory and time of `codec encode` / `codec decode` against the number of pixels,
and seams (PSNR next to the synthesis tile borders against elsewhere).

    python scripts/bench_tiles.py [--sizes 1,4,16,64] [--8k] [-o results/bench_tiles.md]

Each size is a mosaic of Kodak images (scaled by 2 so the content is photo-like at every size), coded
with the default model at the default quality in its own processes (the CLI, as a user runs it); peak
RSS is the child's ru_maxrss. Times are also given per megapixel relative to the smallest size
(linear cost: ratios near 1). The machine is stated in the output.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def mosaic(width: int, height: int, shift: int = 200) -> np.ndarray:
    """A width x height picture tiled from the Kodak images, each upscaled 2x (bicubic), shifted by
    `shift` pixels so that the edges between images do not fall on the synthesis tile borders."""
    from PIL import Image

    from codec.settings import data_dir

    files = sorted((data_dir() / "kodak").glob("*.png"))
    full_h, full_w = height + shift, width + shift
    out = np.zeros((full_h, full_w, 3), dtype=np.uint8)
    k, y = 0, 0
    while y < full_h:
        x, row_h = 0, 0
        while x < full_w:
            with Image.open(files[k % len(files)]) as im:
                tile = np.asarray(im.convert("RGB").resize((im.width * 2, im.height * 2), Image.BICUBIC))
            k += 1
            h, w = min(tile.shape[0], full_h - y), min(tile.shape[1], full_w - x)
            out[y : y + h, x : x + w] = tile[:h, :w]
            x, row_h = x + w, max(row_h, h)
        y += row_h
    return np.ascontiguousarray(out[shift:, shift:])


def measured(cmd: list[str]) -> tuple[float, float]:
    """Run `cmd` under a wrapper process, so its own peak RSS is reported (not the maximum so far)."""
    wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True); "
               "s = time.perf_counter() - t; "
               "print(s, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, r.returncode, "
               "r.stderr.strip().replace(chr(10), ' ')[-300:])")
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=True).stdout
    seconds, peak, rc, *err = out.split(" ", 3)
    if int(rc):
        raise SystemExit(f"{' '.join(cmd)} failed ({rc}): {' '.join(err)}")
    return float(seconds), float(peak)


def border_psnr(ref: np.ndarray, out: np.ndarray, tile_px: int, band: int = 8) -> tuple[float, float]:
    """PSNR (dB) of the pixels within `band` of a synthesis tile border, and of all the others."""
    rows = np.arange(ref.shape[0]) % tile_px
    cols = np.arange(ref.shape[1]) % tile_px
    near_r = (rows < band) | (rows >= tile_px - band)
    near_c = (cols < band) | (cols >= tile_px - band)
    near = near_r[:, None] | near_c[None, :]
    near[: band] = near[-band:] = False  # the picture's own border is not a tile border
    near[:, :band] = near[:, -band:] = False
    err = (ref.astype(np.float64) - out.astype(np.float64)) ** 2
    e = err.mean(axis=2)

    def psnr(mask):
        return float(10 * np.log10(255.0**2 / max(e[mask].mean(), 1e-12)))

    return psnr(near), psnr(~near)


def one_pass_difference(bitstream: Path, tiled: np.ndarray) -> tuple[int, float]:
    """(max difference in levels, share of differing values) between the tiled decode and g_s run over
    the whole latent in one pass (the same symbols)."""
    import torch

    from codec.container import YSTR, read_container
    from codec.pipeline import hyperprior, image
    from codec.pipeline.rate import rate_from_field

    container = read_container(bitstream.read_bytes())
    model = image.load_model(container.header.model_id)
    rate = rate_from_field(model, container.header.quality)
    mean_q, scale = model.entropy.parameters(hyperprior.decode_side(model, container))
    y_sym = model.entropy.y.decompress(container.get(YSTR), model.entropy.scale_index(scale, rate.enc_step))
    y_hat = hyperprior.dequantize(y_sym, mean_q, rate)
    with torch.no_grad():
        x = model.module.g_s(y_hat)[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    diff = np.abs(x[: tiled.shape[0], : tiled.shape[1]].astype(int) - tiled.astype(int))
    return int(diff.max()), float((diff > 0).mean())


def main() -> None:
    from PIL import Image

    from codec.pipeline.tiles import LATENT, SYNTH_MARGIN, SYNTH_TILE

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1,4,16,64", help="megapixels (4:3 pictures)")
    p.add_argument("--8k", dest="eight_k", action="store_true", help="also 7680 x 4320")
    p.add_argument("-o", "--output", default=str(REPO / "results" / "bench_tiles.md"))
    a = p.parse_args()
    codec = [sys.executable, "-c", "from codec.cli.app import run; run()"]
    sizes = []
    for mp in (float(s) for s in a.sizes.split(",")):
        w = int(round((mp * 1e6 * 4 / 3) ** 0.5 / 16)) * 16
        sizes.append((f"{mp:g} MP", w, int(round(mp * 1e6 / w / 16)) * 16))
    if a.eight_k:
        sizes.append(("8K", 7680, 4320))
    from codec.eval.report import cpu_name

    cpu = cpu_name()
    lines = [f"# Large images: memory and time ({cpu}, {os.cpu_count()} cores, torch threads default)", "",
             f"`python scripts/bench_tiles.py --sizes {a.sizes}{' --8k' if a.eight_k else ''}`; default model and "
             "quality, the CLI in a fresh process per run; peak RSS of that process.", "",
             "| input | pixels | file bytes | bpp | encode s | encode peak MiB | decode s | decode peak MiB | "
             "encode s/MP (x smallest) | decode s/MP (x smallest) | PSNR near tile borders | PSNR elsewhere |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for name, w, h in sizes:
            src, bits, dec = Path(tmp) / "in.png", Path(tmp) / "in.bin", Path(tmp) / "out.png"
            pixels = mosaic(w, h)
            Image.fromarray(pixels).save(src, compress_level=1)
            te, me = measured(codec + ["encode", str(src), "-o", str(bits), "--force"])
            td, md = measured(codec + ["decode", str(bits), "-o", str(dec), "--force"])
            with Image.open(dec) as im:
                out = np.asarray(im.convert("RGB"))
            near, far = border_psnr(pixels, out, SYNTH_TILE * LATENT)
            mp = w * h / 1e6
            if base is None:
                base = (te / mp, td / mp)
                seams = one_pass_difference(bits, out), name
            size = bits.stat().st_size
            lines.append(f"| {name} | {w}x{h} | {size} | {8 * size / (w * h):.4f} | {te:.1f} | {me:.0f} | {td:.1f} | "
                         f"{md:.0f} | {te / mp:.2f} (x{te / mp / base[0]:.2f}) | {td / mp:.2f} (x{td / mp / base[1]:.2f}) | "
                         f"{near:.2f} | {far:.2f} |")
            print(lines[-1], flush=True)
            for f in (src, bits, dec):
                f.unlink()
    (diff, share), name = seams
    lines += ["", f"Seams: at {name}, the tiled decode differs from g_s run over the whole latent in one pass by at "
              f"most {diff} level(s), in {100 * share:.4f}% of the values (float rounding; every kept pixel sees the "
              f"same inputs). Tiles: {SYNTH_TILE * LATENT} pixels, {LATENT * SYNTH_MARGIN} pixels of context."]
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text("\n".join(lines) + "\n")
    print(f"wrote {a.output}")


if __name__ == "__main__":
    main()

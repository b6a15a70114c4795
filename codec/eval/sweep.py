"""Sweeping codecs over images: one row per (image, codec, quality), measured from whole files.

Each worker process builds the codecs once (models load once per process) and codes whole images;
`jobs` > 1 runs images in parallel processes (each then uses one torch thread, and times are
measured under that sharing: compare times only within one run).
"""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

from codec.eval.cache import read_row, row_key, write_row
from codec.io import read_image
from codec.metrics import bpp, ms_ssim, psnr

_CODECS: dict = {}


def _codecs(specs: tuple[str, ...]):
    from codec.eval.codecs import make_codec

    key = specs
    if key not in _CODECS:
        _CODECS[key] = [make_codec(s) for s in specs]
    return _CODECS[key]


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def evaluate_image(specs: tuple[str, ...], path: str, cache: str | None = None) -> list[dict]:
    """All codecs at all their qualities on one image; rows of `cache` (a folder) are reused."""
    pixels = read_image(path).pixels
    h, w = pixels.shape[:2]
    digest = hashlib.sha256(pixels.tobytes()).hexdigest() + f"{h}x{w}" if cache else ""
    rows = []
    for codec in _codecs(specs):
        for q in codec.qualities:
            key = row_key(digest, codec, q)
            cached = read_row(cache, key)
            if cached is not None:
                rows.append({**cached, "image": Path(path).name, "codec": codec.name})
                continue
            t0 = time.perf_counter()
            data = codec.encode(pixels, q)
            t1 = time.perf_counter()
            decoded = codec.decode(data)
            t2 = time.perf_counter()
            if decoded.shape != pixels.shape:
                raise RuntimeError(f"{codec.name} at {q} decoded {decoded.shape}, expected {pixels.shape}")
            rows.append({
                "image": Path(path).name, "codec": codec.name, "quality": q, "bytes": len(data),
                "bpp": bpp(len(data), h, w), "psnr-rgb": psnr(pixels, decoded), "ms-ssim-rgb": ms_ssim(pixels, decoded),
                "encoding_time": t1 - t0, "decoding_time": t2 - t1,
            })
            write_row(cache, key, rows[-1])
    return rows


def run_sweep(specs: list[str], images: list[Path], jobs: int = 1,
              on_image: Callable[[str, int], None] | None = None, cache: Path | None = None) -> list[dict]:
    """Rows for every image; `on_image(name, n_points)` after each image (progress). With `cache`
    (a folder), rows measured before for the same pixels, codec identity and quality are reused."""
    specs_t = tuple(specs)
    cache = str(cache) if cache is not None else None
    rows: list[dict] = []
    if jobs <= 1:
        for path in images:
            part = evaluate_image(specs_t, str(path), cache)
            rows.extend(part)
            if on_image:
                on_image(path.name, len(part))
        return rows
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(threads,)) as pool:
        futures = {pool.submit(evaluate_image, specs_t, str(p), cache): p for p in images}
        from concurrent.futures import as_completed

        for fut in as_completed(futures):
            part = fut.result()
            rows.extend(part)
            if on_image:
                on_image(futures[fut].name, len(part))
    order = {p.name: i for i, p in enumerate(images)}
    rows.sort(key=lambda r: order[r["image"]])  # stable: codecs stay in their order within an image
    return rows


def points_per_image(specs: list[str]) -> int:
    return sum(len(c.qualities) for c in _codecs(tuple(specs)))

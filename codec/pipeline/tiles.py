"""The transforms in tiles: bounded memory for any image size, and decoded pixels that do not depend on
the number of threads.

Synthesis (decoders): the latent is cut into SYNTH_TILE x SYNTH_TILE blocks; each runs through g_s
with SYNTH_MARGIN latent positions of its neighbours around it (zero only at the image's own border,
as in one pass), and only its own block of pixels is kept. g_s's receptive field is under 4 latent
positions (four 5x5 transposed convolutions of stride 2: 2 + 1 + 0.5 + 0.25 = 3.75), so every kept
pixel sees exactly the inputs a single pass would give it: there is no seam to hide, and
`scripts/bench_tiles.py` measures that (PSNR next to tile borders against elsewhere). Each tile runs
with one intra-op thread, and tiles run side by side on a thread pool; the tiling is fixed by the
latent size alone, so every decoder computes every pixel with the same kernels in the same order,
whatever its thread count (tests/test_tiles.py decodes with 1 and 2 threads in separate processes).
Memory: the output picture plus one tile's activations per worker.

Analysis (encoders): images above ANALYSIS_MIN_PIXELS (1 MP) go through g_a in ANALYSIS_TILE-pixel tiles with
ANALYSIS_MARGIN pixels of context (g_a's receptive field reaches 30 pixels); the latents of each
tile's own block are kept. The encoder alone runs g_a, so its thread count may vary freely; smaller
images take the single pass they always took (same bytes as before).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from codec.models.hyperprior import STRIDE

LATENT = 16  # pixels per latent position (g_a halves the size four times)

__all__ = ["synthesize", "analyse_tiled", "SYNTH_TILE", "SYNTH_MARGIN"]

SYNTH_TILE = 32  # latent positions per tile side (512 pixels)
SYNTH_MARGIN = 4  # latent positions of context on each side (g_s reaches 3.75)
ANALYSIS_TILE = 16 * STRIDE  # pixels per tile side (1024)
ANALYSIS_MARGIN = STRIDE  # pixels of context on each side (64; g_a reaches 30)
ANALYSIS_MIN_PIXELS = 1 << 20  # 1 megapixel: up to this, one pass (4 MP in one pass peaks at 2.4 GB)


def _spans(size: int, tile: int, margin: int) -> list[tuple[int, int, int, int]]:
    """(start, stop) of each tile's own block and (start, stop) of its input with context, along one
    axis of `size` positions."""
    out = []
    for a in range(0, size, tile):
        b = min(size, a + tile)
        out.append((a, b, max(0, a - margin), min(size, b + margin)))
    return out


def _workers(threads: int | None) -> int:
    return max(1, threads if threads is not None else torch.get_num_threads())


@torch.no_grad()
def synthesize(g_s: torch.nn.Module, y_hat: torch.Tensor, height: int, width: int,
               threads: int | None = None) -> np.ndarray:
    """y_hat (1, M, h, w) -> pixels (height, width, 3) uint8 (the top-left crop of the padded picture).
    Identical for any `threads` (default: torch's intra-op thread count)."""
    _, _, h, w = y_hat.shape
    y_hat = y_hat.float()
    out = np.empty((height, width, 3), dtype=np.uint8)
    jobs = [(r, c) for r in _spans(h, SYNTH_TILE, SYNTH_MARGIN) for c in _spans(w, SYNTH_TILE, SYNTH_MARGIN)]

    def run(job) -> None:
        (r0, r1, i0, i1), (c0, c1, j0, j1) = job
        if r0 * LATENT >= height or c0 * LATENT >= width:
            return  # padding only
        x = g_s(y_hat[:, :, i0:i1, j0:j1])[0]
        top, left = (r0 - i0) * LATENT, (c0 - j0) * LATENT
        rows, cols = min(r1 * LATENT, height) - r0 * LATENT, min(c1 * LATENT, width) - c0 * LATENT
        block = x[:, top : top + rows, left : left + cols]
        out[r0 * LATENT : r0 * LATENT + rows, c0 * LATENT : c0 * LATENT + cols] = (
            block.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy())

    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # one kernel configuration for every tile, whatever the thread count
    try:
        workers = min(_workers(threads), len(jobs))
        if workers == 1:
            for job in jobs:
                run(job)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(run, jobs))
    finally:
        torch.set_num_threads(previous)
    return out


@torch.no_grad()
def analyse_tiled(g_a: torch.nn.Module, padded: np.ndarray) -> torch.Tensor:
    """padded pixels (H, W, 3) uint8, H and W multiples of STRIDE -> y (1, M, H/16, W/16) float32,
    in one pass up to ANALYSIS_MIN_PIXELS, else tile by tile (bounded memory)."""
    height, width = padded.shape[:2]

    def run(rows: slice, cols: slice) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(padded[rows, cols])).permute(2, 0, 1)[None].float().div_(255.0)
        return g_a(x)

    if height * width <= ANALYSIS_MIN_PIXELS:
        return run(slice(None), slice(None))
    y = None
    for r0, r1, i0, i1 in _spans(height, ANALYSIS_TILE, ANALYSIS_MARGIN):
        for c0, c1, j0, j1 in _spans(width, ANALYSIS_TILE, ANALYSIS_MARGIN):
            part = run(slice(i0, i1), slice(j0, j1))
            if y is None:
                y = torch.empty(1, part.shape[1], height // LATENT, width // LATENT)
            top, left = (r0 - i0) // LATENT, (c0 - j0) // LATENT
            y[:, :, r0 // LATENT : r1 // LATENT, c0 // LATENT : c1 // LATENT] = (
                part[:, :, top : top + (r1 - r0) // LATENT, left : left + (c1 - c0) // LATENT])
    return y

"""Sweeping video codecs over clips: one row per (clip, codec, quality), with a cache of measured rows.

    clips (video.Clip) ─┐
                        ├─► evaluate_clips ─► rows ─► video_report.video_results ─► report.write
    video codecs ───────┘        (cache: one JSON file per row, keyed by what the row depends on)

Every codec codes each whole clip at each of its qualities with a key frame every `gop` frames
(see `video_codecs` for the `run` contract); bpp is recomputed here from the bytes and the clip's
size and must agree with the codec's own figure.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from codec.errors import UsageError
from codec.eval.cache import read_row, row_key, write_row
from codec.eval.video import Clip, check_frames

__all__ = ["ROW_KEYS", "evaluate_clips"]

ROW_KEYS = ("clip", "codec", "quality", "bpp", "psnr-rgb", "bytes", "frames", "width", "height",
            "encode_fps", "decode_fps")


def evaluate_clips(clips: Sequence[Clip], codecs: Sequence, gop: int,
                   log: Callable[[str], None] | None = print, cache: Path | None = None) -> list[dict]:
    """Every codec at every quality on every clip: one row per (clip, codec, quality).

    Rows have the keys of `ROW_KEYS` plus "gop", "encode_seconds", "decode_seconds" and
    "psnr-frames" (per-frame PSNR). bpp is recomputed here from the codec's byte count and the clip's
    size, and must agree with the codec's own figure. With `cache` (a folder), a row already measured
    for the same frames, codec identity, quality and GOP is read back instead of run again (its
    timings are those of the run that measured it; rows say "cached": true).
    """
    names = [c.name for c in clips]
    if len(set(names)) != len(names):
        raise UsageError(f"clip names must be unique: {names}")
    rows = []
    for clip in clips:
        check_frames(clip.frames)
        digest = _frames_digest(clip) if cache is not None else ""
        for codec in codecs:
            for q in codec.qualities:
                key = row_key(digest, codec, q, gop)
                row = read_row(cache, key)
                if row is not None:
                    rows.append({**row, "clip": clip.name, "codec": codec.name})
                    if log:
                        log(f"{clip.name} {codec.name} q={q}: {row['bpp']:.4f} bpp, {row['psnr-rgb']:.2f} dB (cached)")
                    continue
                rows.append(_measure_row(clip, codec, q, gop, log))
                write_row(cache, key, rows[-1])
    return rows


def _measure_row(clip: Clip, codec, quality, gop: int, log: Callable[[str], None] | None) -> dict:
    """Runs `codec` on `clip` at `quality` and checks what it reports: the row of `evaluate_clips`."""
    h, w = check_frames(clip.frames)
    n = len(clip.frames)
    r = codec.run(clip.frames, quality, gop)
    where = f"{codec.name} at {quality} on {clip.name}"
    if r.frames != n or len(r.psnr_frames) != n:
        raise RuntimeError(f"{where}: {r.frames} frames back, expected {n}")
    bpp = 8.0 * r.bytes / (n * h * w)
    if not np.isclose(bpp, r.bpp, rtol=1e-9):
        raise RuntimeError(f"{where}: bpp {r.bpp} is not 8*bytes/(frames*W*H) = {bpp}")
    if log:
        log(f"{clip.name} {codec.name} q={quality}: {bpp:.4f} bpp, {r.psnr_rgb:.2f} dB, "
            f"enc {n / max(r.encode_seconds, 1e-9):.1f} fps, dec {n / max(r.decode_seconds, 1e-9):.1f} fps")
    return {
        "clip": clip.name, "codec": codec.name, "quality": quality, "bpp": bpp, "psnr-rgb": float(r.psnr_rgb),
        "bytes": int(r.bytes), "frames": n, "width": w, "height": h,
        "encode_fps": n / r.encode_seconds if r.encode_seconds > 0 else None,
        "decode_fps": n / r.decode_seconds if r.decode_seconds > 0 else None,
        "gop": gop, "encode_seconds": r.encode_seconds, "decode_seconds": r.decode_seconds,
        "psnr-frames": [float(p) for p in r.psnr_frames],
    }


def _frames_digest(clip: Clip) -> str:
    h = hashlib.sha256()
    for f in clip.frames:
        h.update(np.ascontiguousarray(f).tobytes())
    return h.hexdigest()

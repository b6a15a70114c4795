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
import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from codec.atomic import atomic_write
from codec.errors import UsageError
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
                path = Path(cache) / f"{_cache_key(digest, codec, q, gop)}.json" if cache is not None else None
                if path is not None and path.exists():
                    row = json.loads(path.read_text())
                    rows.append({**row, "clip": clip.name, "codec": codec.name, "cached": True})
                    if log:
                        log(f"{clip.name} {codec.name} q={q}: {row['bpp']:.4f} bpp, {row['psnr-rgb']:.2f} dB (cached)")
                    continue
                rows.append(_measure_row(clip, codec, q, gop, log))
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    atomic_write(path, json.dumps(rows[-1]).encode(), force=True)
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


def _cache_key(frames_digest: str, codec, quality, gop: int) -> str:
    """What a row depends on: the clip's frames (their digest), the codec's identity (its
    `cache_identity` when it has one, else name, version and settings), the quality and the GOP."""
    ident = getattr(codec, "cache_identity", None) or {"name": codec.name, "version": codec.version,
                                                         "settings": codec.settings}
    text = frames_digest + json.dumps([ident, str(quality), gop], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]

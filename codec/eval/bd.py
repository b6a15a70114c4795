"""Bjontegaard deltas (BD-rate, BD-PSNR) over the overlapping quality range.

Uses the `bjontegaard` package with piecewise cubic (PCHIP) interpolation, the method of
JCTVC-B055 / VCEG-AI11's successors, integrating only where both curves have points. Curves are
cleaned first: sorted by rate, and points whose quality does not increase with rate are dropped
(interpolation needs a monotone curve; `clean_curve` reports how many were dropped).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

MIN_POINTS = 4


@dataclass(frozen=True)
class Delta:
    bd_rate: float | None  # percent; negative = fewer bits than the anchor at equal quality
    bd_quality: float | None  # dB (or MS-SSIM units); positive = better than the anchor at equal rate
    overlap: float  # fraction of the smaller curve's quality range shared with the other
    points_in_overlap: tuple[int, int]  # (anchor, test)
    warning: str | None = None


def clean_curve(rate, quality) -> tuple[np.ndarray, np.ndarray, int]:
    r, q = np.asarray(rate, float), np.asarray(quality, float)
    keep = np.isfinite(r) & np.isfinite(q) & (r > 0)
    r, q = r[keep], q[keep]
    order = np.argsort(r)
    r, q = r[order], q[order]
    out_r, out_q = [], []
    for a, b in zip(r, q):
        if not out_q or (b > out_q[-1] and a > out_r[-1]):
            out_r.append(a)
            out_q.append(b)
    return np.array(out_r), np.array(out_q), int(len(r) - len(out_r))


def delta(anchor_rate, anchor_quality, test_rate, test_quality) -> Delta:
    """BD-rate and BD-quality of `test` against `anchor` (rates in bpp, quality in dB or MS-SSIM)."""
    import bjontegaard

    ar, aq, _ = clean_curve(anchor_rate, anchor_quality)
    tr, tq, _ = clean_curve(test_rate, test_quality)
    if len(ar) < 2 or len(tr) < 2:
        return Delta(None, None, 0.0, (len(ar), len(tr)), "fewer than 2 usable points")
    lo, hi = max(aq.min(), tq.min()), min(aq.max(), tq.max())
    span = min(aq.max() - aq.min(), tq.max() - tq.min())
    overlap = max(0.0, hi - lo) / span if span > 0 else 0.0
    n_in = (int(((aq >= lo) & (aq <= hi)).sum()), int(((tq >= lo) & (tq <= hi)).sum()))
    if hi <= lo:
        return Delta(None, None, 0.0, n_in, "the curves do not overlap in quality")
    note = None
    if overlap < 0.5 or min(n_in) < MIN_POINTS:
        note = f"short overlap: {overlap:.0%} of the quality range, {n_in[0]}/{n_in[1]} points inside"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rate = bjontegaard.bd_rate(ar, aq, tr, tq, method="pchip", require_matching_points=False, min_overlap=0.0)
        quality = bjontegaard.bd_psnr(ar, aq, tr, tq, method="pchip", require_matching_points=False, min_overlap=0.0)
    if not np.isfinite(quality):  # BD-PSNR integrates over the rates: none shared
        quality = None
        note = "; ".join(filter(None, [note, "no shared rate range: no BD-PSNR"]))
    rate = float(rate) if np.isfinite(rate) else None
    return Delta(rate, None if quality is None else float(quality), float(overlap), n_in, note)

"""Clips whose scenes come back, for evaluating a video codec that remembers earlier frames (issue 18).

    clips A, B (any sizes) ─► alternate ─► A B A B ...  each segment continues where that clip stopped
    one large still       ─► pan       ─► a window slides left to right and back to the first view
    one large still       ─► cut       ─► window at the left, cut to the far right, cut back (slow drift)
                                 │
                                 ▼
        Returning(frames, origins, cuts, returns) ─► scripts/make_returning_clips.py writes the files

`cuts` lists the frames that start a new shot; `returns` pairs a frame with the earlier frame whose
view it brings back, so an evaluation can single out the rate of the frames after a cut back (a codec
without memory pays for them as for a new scene). Frames are (H, W, 3) uint8 RGB; every size is a
multiple of `MULTIPLE` so the coders' downsampling never pads. numpy only: the readers and writers
live in the script.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from codec.errors import UsageError

__all__ = ["MULTIPLE", "Origin", "Returning", "alternate", "common_size", "cut", "pan"]

MULTIPLE = 16
"""Every clip's height and width are multiples of this."""


@dataclass(frozen=True)
class Origin:
    """Where one output frame comes from: `frames[source][frame][top:top+H, left:left+W]`."""

    source: int
    frame: int
    top: int
    left: int


@dataclass(frozen=True)
class Returning:
    """A clip built from one or more sources, with its cuts and the frames its scenes return to.

    Attributes:
        frames: list of (H, W, 3) uint8 RGB frames, all of one size, H and W multiples of `MULTIPLE`.
        origins: one `Origin` per frame.
        cuts: frame numbers that start a new shot (a jump to another scene or place), ascending.
        returns: (frame, earlier) pairs: `frame` shows again the scene (for `pan`, exactly the view)
            of the earlier frame `earlier`, with no frame of that scene in between for `alternate`
            and `cut`.
    """

    frames: list = field(repr=False)
    origins: tuple[Origin, ...]
    cuts: tuple[int, ...]
    returns: tuple[tuple[int, int], ...]

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of every frame."""
        return int(self.frames[0].shape[0]), int(self.frames[0].shape[1])

    def segments(self) -> list[dict]:
        """Runs of frames between cuts: {"frames": [a, b), "source", "source_frames": [first, last + 1),
        "top", "left"}; `left` (or `top`) is a list with one entry a frame when the window moves."""
        bounds = [0, *self.cuts, len(self.frames)]
        out = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            run = self.origins[a:b]
            tops, lefts = [o.top for o in run], [o.left for o in run]
            out.append({"frames": [a, b], "source": run[0].source,
                        "source_frames": [run[0].frame, run[-1].frame + 1],
                        "top": tops[0] if len(set(tops)) == 1 else tops,
                        "left": lefts[0] if len(set(lefts)) == 1 else lefts})
        return out


def common_size(sizes: Sequence[tuple[int, int]], multiple: int = MULTIPLE) -> tuple[int, int]:
    """The largest (H, W), multiples of `multiple`, that fits inside every (H, W) of `sizes`.

    Raises:
        UsageError: no size given, or a source smaller than `multiple` in one dimension.
    """
    if not sizes:
        raise UsageError("need at least one size")
    h = min(s[0] for s in sizes) // multiple * multiple
    w = min(s[1] for s in sizes) // multiple * multiple
    if h < multiple or w < multiple:
        raise UsageError(f"sources of sizes {list(sizes)} leave no {multiple}x{multiple} block in common")
    return h, w


def _window(frame: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    return np.ascontiguousarray(frame[top:top + height, left:left + width])


def alternate(clips: Sequence[Sequence[np.ndarray]], segment: int, repeats: int) -> Returning:
    """Segments of `segment` frames taken in turn from each clip, `repeats` rounds (A B A B ... for two).

    Round r takes frames r*segment .. (r+1)*segment - 1 of each clip, so every segment continues where
    the same clip's previous segment stopped: the scene returns after a gap of (len(clips) - 1) *
    segment frames. All clips are cropped at their centre to `common_size` of their sizes.

    Args:
        clips: two or more clips, each a sequence of (H, W, 3) uint8 frames of one size, holding at
            least segment * repeats frames (frames beyond are not used).
        segment: frames per segment, at least 1.
        repeats: segments taken from each clip, at least 2 (so that each scene returns).

    Returns:
        len(clips) * segment * repeats frames. `cuts`: every segment start but the first. `returns`:
        the first frame of each segment after the first round, with the last frame of the same
        clip's previous segment.
    """
    if len(clips) < 2 or segment < 1 or repeats < 2:
        raise UsageError(f"need two or more clips, segment >= 1 and repeats >= 2; got {len(clips)} clips, "
                         f"segment {segment}, repeats {repeats}")
    for i, clip in enumerate(clips):
        if len(clip) < segment * repeats:
            raise UsageError(f"clip {i} has {len(clip)} frames; {repeats} segments of {segment} need "
                             f"{segment * repeats}")
    h, w = common_size([np.asarray(c[0]).shape[:2] for c in clips])
    offsets = [((c[0].shape[0] - h) // 2, (c[0].shape[1] - w) // 2) for c in clips]
    frames, origins, cuts, returns = [], [], [], []
    for r in range(repeats):
        for i, clip in enumerate(clips):
            start = len(frames)
            if start:
                cuts.append(start)
            if r:
                returns.append((start, start - len(clips) * segment + segment - 1))
            top, left = offsets[i]
            for k in range(r * segment, (r + 1) * segment):
                frames.append(_window(clip[k], top, left, h, w))
                origins.append(Origin(i, k, top, left))
    return Returning(frames, tuple(origins), tuple(cuts), tuple(returns))


def _check_window(still: np.ndarray, height: int, width: int) -> None:
    if height < MULTIPLE or width < MULTIPLE or height % MULTIPLE or width % MULTIPLE:
        raise UsageError(f"the window must be multiples of {MULTIPLE} in both dimensions; got {width}x{height}")
    if still.shape[0] < height or still.shape[1] < width:
        raise UsageError(f"a {width}x{height} window does not fit a {still.shape[1]}x{still.shape[0]} still")


def pan(still: np.ndarray, height: int, width: int, frames: int) -> Returning:
    """A camera panning over `still` from its left edge to (near) its right edge and back.

    The window (vertically centred) moves by a whole number of pixels `step` per frame: frame i is at
    left = step * min(i, frames - 1 - i), so the last frame is the first view again and frame
    frames - 1 - i shows exactly the view of frame i. `step` is the largest that keeps the window
    inside the still.

    Returns:
        `frames` frames; no cut; `returns` pairs each frame of the way back with the frame of the
        way out that shows the same view.
    """
    _check_window(still, height, width)
    peak = (frames - 1) // 2
    if peak < 1 or (still.shape[1] - width) < peak:
        raise UsageError(f"a pan of {frames} frames needs frames >= 3 and the still at least "
                         f"{width + max(peak, 1)} wide (a window of {width} moving 1 px a frame); "
                         f"the still is {still.shape[1]} wide")
    step = (still.shape[1] - width) // peak
    top = (still.shape[0] - height) // 2
    lefts = [step * min(i, frames - 1 - i) for i in range(frames)]
    out = [_window(still, top, left, height, width) for left in lefts]
    origins = tuple(Origin(0, 0, top, left) for left in lefts)
    returns = tuple((i, frames - 1 - i) for i in range(frames) if frames - 1 - i < i)
    return Returning(out, origins, (), returns)


def cut(still: np.ndarray, height: int, width: int, frames: int, segment: int, drift: int = 1) -> Returning:
    """A still camera drifting `drift` px a frame to the right: at the left of `still` for `segment`
    frames, cut to the far right for `segment` frames, cut back to the left for the rest (A B A).

    Scene A continues its drift where it stopped: frame 2*segment is at left = drift * segment, one
    drift step from frame segment - 1. B starts at the place that ends its drift at the right edge;
    no window of B overlaps one of A.

    Returns:
        `frames` frames (more than 2 * segment). `cuts`: (segment, 2*segment). `returns`:
        ((2*segment, segment - 1),).
    """
    _check_window(still, height, width)
    if segment < 1 or frames <= 2 * segment or drift < 0:
        raise UsageError(f"need segment >= 1, frames > 2 * segment and drift >= 0; got segment {segment}, "
                         f"frames {frames}, drift {drift}")
    far = still.shape[1] - width - drift * (segment - 1)
    a_end = drift * (frames - segment - 1) + width  # right edge of A's last window
    if far < a_end:
        raise UsageError(f"a {still.shape[1]} px wide still leaves no place for scene B: its windows would "
                         f"overlap scene A's (A reaches {a_end} px, B would start at {far})")
    top = (still.shape[0] - height) // 2
    lefts = [drift * i if i < segment else far + drift * (i - segment) if i < 2 * segment
             else drift * (i - segment) for i in range(frames)]
    out = [_window(still, top, left, height, width) for left in lefts]
    origins = tuple(Origin(0, 0, top, left) for left in lefts)
    return Returning(out, origins, (segment, 2 * segment), ((2 * segment, segment - 1),))

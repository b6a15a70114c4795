"""Video clips for `codec eval --video`: a fixed window of a video file, decoded to RGB frames.

    clip file ─► load_clip ─► Clip(name, frames) ─► video_sweep.evaluate_clips(clips, video_codecs...)

The rest of video evaluation: `video_codecs` (the x264/x265 baselines and ours), `video_sweep` (the
harness and its row cache), `video_report` (curves, BD-rates, table and plot; written by
`report.write`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from codec.errors import InputError, UnsupportedError, UsageError

__all__ = ["Clip", "check_frames", "load_clip"]


@dataclass(frozen=True)
class Clip:
    """A short piece of video held in memory.

    Attributes:
        name: unique name within one evaluation (the file stem, `@start` appended when start > 0).
        frames: list of (H, W, 3) uint8 RGB frames, all the same size.
        fps: the source's average frame rate, when known (informational).
    """

    name: str
    frames: list = field(repr=False)
    fps: float | None = None

    @property
    def height(self) -> int:
        return int(self.frames[0].shape[0])

    @property
    def width(self) -> int:
        return int(self.frames[0].shape[1])

    def describe(self) -> dict:
        return {"name": self.name, "frames": len(self.frames), "width": self.width, "height": self.height,
                "fps": self.fps}


def check_frames(frames: Sequence[np.ndarray]) -> tuple[int, int]:
    """(H, W) of a clip's frames, after checking they are (H, W, 3) uint8 of one size.

    Raises:
        UsageError: no frame, or frames of another type, layout or size.
    """
    if not frames:
        raise UsageError("a clip needs at least one frame")
    shape = np.asarray(frames[0]).shape
    for f in frames:
        f = np.asarray(f)
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3 or f.shape != shape:
            raise UsageError(f"frames must be (H, W, 3) uint8 of one size; got {f.shape} {f.dtype} after {shape}")
    return int(shape[0]), int(shape[1])


def load_clip(path, start: int = 0, count: int | None = None) -> Clip:
    """Frames start .. start+count-1 of a video file, decoded with PyAV and converted to RGB24.

    The conversion is PyAV's (swscale) from the stream's own pixel format and colour tags.
    `count=None` takes every frame from `start` on.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if start < 0 or (count is not None and count < 1):
        raise UsageError(f"need start >= 0 and count >= 1, got start={start} count={count}")
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UnsupportedError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            fps = float(stream.average_rate) if stream.average_rate else None
            for i, frame in enumerate(container.decode(stream)):
                if i >= start:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if count is not None and len(frames) == count:
                    break
    except av.error.FFmpegError as exc:
        raise UnsupportedError(f"{path}: cannot decode as video ({exc})") from None
    if not frames or (count is not None and len(frames) < count):
        raise UsageError(f"{path}: has {start + len(frames)} frames, asked for {start}..{start + (count or 1) - 1}")
    return Clip(path.stem + (f"@{start}" if start else ""), frames, fps)

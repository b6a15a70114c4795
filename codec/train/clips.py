"""Reading the training clips: frame counts and sizes, frames in order, crops (PyAV, or OpenCV where
PyAV is missing, as on the GPU machines), and the frozen image model's module on a device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".y4m")


def crop_at(frame: np.ndarray, r: int, c: int, size: int) -> np.ndarray:
    return np.ascontiguousarray(frame[r : r + size, c : c + size])


def halve(frame: np.ndarray) -> np.ndarray:
    from PIL import Image

    h, w = frame.shape[:2]
    return np.asarray(Image.fromarray(frame).resize((w // 2, h // 2), Image.BICUBIC))


def clip_info(path: Path) -> tuple[int, int, int]:
    """(frames, height, width) of a clip; PyAV, or OpenCV where PyAV is missing (the GPU machines)."""
    try:
        import av
    except ImportError:
        import cv2

        cap = cv2.VideoCapture(str(path))
        try:
            return (int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                    int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
        finally:
            cap.release()
    with av.open(str(path)) as box:
        s = box.streams.video[0]
        frames, h, w = s.frames or 0, s.codec_context.height, s.codec_context.width
        if not frames and box.duration and s.average_rate:  # Matroska / AVI: no count, estimate
            frames = int(box.duration / 1e6 * float(s.average_rate))
    return frames, h, w


def clip_frames(path: Path):
    """The clip's frames, (H, W, 3) uint8 RGB, in order (PyAV, or OpenCV as `clip_info`)."""
    try:
        import av
    except ImportError:
        import cv2

        cap = cv2.VideoCapture(str(path))
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    return
                yield np.ascontiguousarray(bgr[:, :, ::-1])
        finally:
            cap.release()
    with av.open(str(path)) as box:
        for frame in box.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def module_on(ae, device: torch.device | None):
    """The autoencoder's module on `device` (a copy; the loaded model stays on the CPU)."""
    if device is None or torch.device(device).type == "cpu":
        return ae.module
    import copy

    return copy.deepcopy(ae.module).to(device)

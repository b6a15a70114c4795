"""The shipped video model: its golden bitstream still decodes to exactly the committed frames, and
the golden source re-encodes to the same bytes (encoder and format drift guard)."""

from __future__ import annotations

import hashlib
import io
import json
import sys
from fractions import Fraction
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"
INFOS = sorted(GOLDEN.glob("golden_video*.json"))  # one per shipped video format (container version 2, 3)

pytestmark = pytest.mark.skipif(not INFOS, reason="no golden video bitstream")


def _load(path: Path):
    sys.path.insert(0, str(REPO / "scripts"))
    from make_golden_video import FRAMES, GOP, QUALITY, SOURCE, frames_sha256

    return json.loads(path.read_text()), FRAMES, GOP, QUALITY, SOURCE, frames_sha256


def test_there_is_a_golden_video_of_each_container_version():
    from codec.container.format import unpack_preamble

    versions = {unpack_preamble((GOLDEN / json.loads(p.read_text())["bitstream"]).read_bytes()[:16]) for p in INFOS}
    assert versions == {(2, 2), (3, 3)}


@pytest.mark.parametrize("path", INFOS, ids=lambda p: p.stem)
def test_golden_video_decodes_to_the_committed_latents(path):
    from codec.container.video import VideoReader
    from codec.eval.video import load_clip

    info, n, *_ = _load(path)
    from make_golden_video import decode, mean_psnr  # scripts/ is on the path after _load
    data = (GOLDEN / info["bitstream"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == info["bitstream_sha256"]
    assert VideoReader(io.BytesIO(data)).header.model_id == info["model_id"]
    frames, latents_sha = decode(data)  # the model named in the header
    assert [len(frames), *frames[0].shape] == info["shape"]
    assert latents_sha == info["latents_sha256"]  # every decoded symbol and parameter, bit for bit
    assert abs(mean_psnr(load_clip(REPO / "assets" / "carphone.mp4", 0, n).frames, frames) - info["psnr_rgb"]) < 0.01


@pytest.mark.parametrize("path", INFOS, ids=lambda p: p.stem)
def test_golden_video_source_reencodes_to_the_same_bytes(path):
    from codec.eval.video import load_clip
    from codec.pipeline.video import compress_video, load_video_model

    info, n, gop, quality, source, frames_sha256 = _load(path)
    frames = load_clip(source, 0, n).frames
    assert frames_sha256(frames) == info["source_frames_sha256"]
    buf = io.BytesIO()
    h, w = frames[0].shape[:2]
    stats = compress_video(load_video_model(info["model_id"]), frames, buf, width=w, height=h, fps=Fraction(30),
                           quality=quality, gop=gop, **info.get("encoder", {"rdo": 0.0}))  # older files: plain rounding
    assert stats.modes == info["modes"]
    assert hashlib.sha256(buf.getvalue()).hexdigest() == info["bitstream_sha256"]

"""The shipped video model: its golden bitstream still decodes to exactly the committed frames, and
the golden source re-encodes to the same bytes (encoder and format drift guard)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from codec.testing import golden_video as golden
from codec.testing.digests import decode_video_with_latents_sha256, frames_sha256

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"
INFOS = sorted(GOLDEN.glob("golden_video*.json"))  # one per shipped video format (container version 2, 3, 5, 6)

pytestmark = pytest.mark.skipif(not INFOS, reason="no golden video bitstream")


def test_there_is_a_golden_video_of_each_container_version():
    from codec.container.format import unpack_preamble

    versions = {unpack_preamble((GOLDEN / json.loads(p.read_text())["bitstream"]).read_bytes()[:16]) for p in INFOS}
    assert versions == {(2, 2), (3, 3), (5, 5), (6, 6)}


@pytest.mark.parametrize("path", INFOS, ids=lambda p: p.stem)
def test_golden_video_decodes_to_the_committed_latents(path):
    from codec.container.video import VideoReader
    from codec.metrics import mean_psnr

    info = json.loads(path.read_text())
    data = (GOLDEN / info["bitstream"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == info["bitstream_sha256"]
    assert VideoReader(io.BytesIO(data)).header.model_id == info["model_id"]
    frames, latents_sha = decode_video_with_latents_sha256(data)  # the model named in the header
    assert [len(frames), *frames[0].shape] == info["shape"]
    assert latents_sha == info["latents_sha256"]  # every decoded symbol and parameter, bit for bit
    assert abs(mean_psnr(golden.source_frames(info.get("recipe", "first")), frames) - info["psnr_rgb"]) < 0.01


@pytest.mark.parametrize("path", INFOS, ids=lambda p: p.stem)
def test_golden_video_source_reencodes_to_the_same_bytes(path):
    from codec.pipeline.video import load_video_model

    info = json.loads(path.read_text())
    frames = golden.source_frames(info.get("recipe", "first"))
    assert frames_sha256(frames) == info["source_frames_sha256"]
    encoder = info.get("encoder", {"rdo": 0.0})  # older files: plain rounding
    data, stats = golden.encode(load_video_model(info["model_id"]), frames, encoder)
    assert stats.modes == info["modes"]
    assert hashlib.sha256(data).hexdigest() == info["bitstream_sha256"]

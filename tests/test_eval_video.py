"""codec eval, video mode: the x264/x265 baselines through PyAV, clip loading, the harness, results
(codec.eval.video, video_codecs, video_sweep, video_report)."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest

from codec.errors import UsageError
from codec.eval.report import write
from codec.eval.video import Clip, load_clip
from codec.eval.video_codecs import Stream, decode_stream, encode_stream, measure, x264, x265
from codec.eval.video_report import video_markdown, video_plot, video_results
from codec.eval.video_sweep import ROW_KEYS, evaluate_clips

av = pytest.importorskip("av")
ENCODERS = {"x264": "libx264", "x265": "libx265"}
MAKERS = {"x264": x264, "x265": x265}


def moving_gradient(n: int = 6, h: int = 48, w: int = 64, shift: int = 0) -> list[np.ndarray]:
    """A smooth colour gradient with a texture, panning 2 px right and 1 px down per frame."""
    yy, xx = np.mgrid[0:h + 2 * n, 0:w + 2 * n].astype(np.float64)
    base = np.stack([96 + 60 * np.sin((xx + shift) / 9 + c) * np.cos(yy / 7 - c) + xx + yy for c in range(3)], -1)
    base = np.clip(base, 0, 255).astype(np.uint8)
    return [np.ascontiguousarray(base[n - i: n - i + h, n - 2 * i + n: n - 2 * i + n + w]) for i in range(n)]


@pytest.fixture(scope="module")
def frames():
    return moving_gradient()


@pytest.mark.parametrize("name", ["x264", "x265"])
def test_baseline_decodes_every_frame_at_the_clip_size(frames, name):
    result = MAKERS[name]().run(frames, 30, 3)
    assert result.frames == 6 and len(result.psnr_frames) == 6
    decoded = decode_stream(encode_stream(frames, ENCODERS[name], 30, 3), 48, 64)
    assert len(decoded) == 6 and all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in decoded)
    assert 25 < result.psnr_rgb < 60


@pytest.mark.parametrize("name", ["x264", "x265"])
def test_bpp_counts_the_bytes_of_every_packet(frames, name):
    result = MAKERS[name]().run(frames, 30, 3)
    stream = encode_stream(frames, ENCODERS[name], 30, 3)  # one thread: the same bytes every time
    assert result.bytes == stream.nbytes == sum(len(p) for p in stream.packets) > 0
    assert result.bpp == pytest.approx(8 * result.bytes / (6 * 64 * 48))


@pytest.mark.parametrize("name", ["x264", "x265"])
def test_lower_crf_gives_more_bytes_and_higher_psnr(frames, name):
    codec = MAKERS[name]()
    fine, coarse = codec.run(frames, 22, 3), codec.run(frames, 40, 3)
    assert fine.bytes > coarse.bytes
    assert fine.psnr_rgb > coarse.psnr_rgb


@pytest.mark.parametrize("name", ["x264", "x265"])
def test_keyint_is_honoured_and_each_gop_decodes_alone(frames, name):
    stream = encode_stream(frames, ENCODERS[name], 30, 3)
    assert sum(stream.keyframes) == 2  # IDR at frames 0 and 3, no scene-cut I-frames
    full = decode_stream(stream)
    second = stream.keyframes.index(True, 1)
    tail = decode_stream(Stream(stream.decoder, stream.packets[second:], stream.keyframes[second:],
                                stream.width, stream.height))
    assert len(tail) == 3 and all(np.array_equal(a, b) for a, b in zip(full[3:], tail))  # closed GOPs


@pytest.mark.parametrize("name", ["x264", "x265"])
def test_encoder_info_sei_is_not_in_the_counted_bytes(frames, name):
    data = b"".join(encode_stream(frames, ENCODERS[name], 30, 3).packets)
    assert b"x264 - core" not in data and b"x265 (build" not in data


@pytest.mark.parametrize("name", ["x264", "x265"])
def test_odd_sizes_are_padded_then_cropped_and_measured_at_the_original_size(name):
    odd = [f[:47, :63].copy() for f in moving_gradient()]
    stream = encode_stream(odd, ENCODERS[name], 30, 3)
    assert (stream.width, stream.height) == (64, 48)
    assert all(f.shape == (47, 63, 3) for f in decode_stream(stream, 47, 63))
    result = MAKERS[name]().run(odd, 30, 3)
    assert result.bpp == pytest.approx(8 * result.bytes / (6 * 63 * 47))


def test_versions_name_the_encoder_library():
    assert x264().version.startswith("libx264") and x265().version.startswith("libx265")


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "pan.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)  # lossless, so the frames come back exactly
        stream.width, stream.height, stream.pix_fmt = 64, 48, "bgr0"
        for f in moving_gradient(8):
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="bgr0")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def test_load_clip_takes_frames_start_to_start_plus_count(clip_file):
    clip = load_clip(clip_file, 2, 3)
    assert clip.name == "pan@2" and len(clip.frames) == 3 and (clip.height, clip.width) == (48, 64)
    assert np.array_equal(clip.frames[0], moving_gradient(8)[2])
    with pytest.raises(UsageError, match="has 8 frames"):
        load_clip(clip_file, 4, 10)


def test_harness_writes_results_table_and_plot_and_self_bd_rate_is_zero(tmp_path):
    clips = [Clip("pan", moving_gradient()), Clip("pan2", moving_gradient(shift=20))]
    a, b = x264(qualities=(24, 36)), x265(qualities=(24, 36))
    # our codecs plug in later as any object with these attributes: here, x264 under another name
    # x264's threads may make a second run of the same clip differ by a few bytes: the twin replays
    # x264's own outputs, so that its BD-rate against x264 is exactly zero
    seen = {}
    first_run = a.run

    def replay(*args, **kw):
        key = repr((args, sorted(kw.items())))
        if key not in seen:  # (dict.setdefault would run x264 again on every call)
            seen[key] = first_run(*args, **kw)
        return seen[key]

    a = dataclasses.replace(a, run=replay)
    twin = SimpleNamespace(name="x264-twin", label="x264 again", version=a.version, settings={},
                           qualities=a.qualities, run=a.run)
    rows = evaluate_clips(clips, [a, b, twin], gop=3, log=None)
    assert len(rows) == 2 * 3 * 2 and all(set(ROW_KEYS) <= set(r) for r in rows)
    results = video_results(rows, [a, b, twin], ["x264"], clips, "test")
    mean = results["codecs"]["x264"]["results"]
    per_clip = [results["per_clip"][c]["x264"]["results"] for c in ("pan", "pan2")]
    assert mean["bpp"] == pytest.approx([np.mean(v) for v in zip(*(p["bpp"] for p in per_clip))])
    twin_bd = results["bd"]["x264"]["psnr-rgb"]["x264-twin"]
    assert twin_bd["bd_rate"] == pytest.approx(0.0, abs=1e-6) and twin_bd["clips"] == 2
    assert set(twin_bd["per_clip"]) == {"pan", "pan2"}
    paths = write(results, tmp_path / "out", table=video_markdown, draw=video_plot)
    assert json.loads(paths["json"].read_text())["codecs"]["x265"]["results"]["bpp"]
    table = paths["table"].read_text()
    assert "BD-rate vs x264" in table and "HEVC (x265 medium)" in table and "enc fps" in table
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cached_rows_are_read_back_instead_of_run_again(tmp_path):
    clip = Clip("grad", moving_gradient(4), 25.0)
    calls = []

    def run(frames, quality, gop):
        calls.append(quality)
        return measure(frames, frames, 100 * (quality + 1), 0.1, 0.1)

    codec = SimpleNamespace(name="dummy", label="dummy", version="1", settings={}, qualities=(1, 2), run=run)
    first = evaluate_clips([clip], [codec], 4, log=None, cache=tmp_path)
    second = evaluate_clips([clip], [codec], 4, log=None, cache=tmp_path)
    assert calls == [1, 2]  # the second sweep ran nothing
    assert [r["bytes"] for r in second] == [r["bytes"] for r in first] and all(r["cached"] for r in second)
    evaluate_clips([clip], [codec], 8, log=None, cache=tmp_path)  # another GOP is another row
    assert calls == [1, 2, 1, 2]


def test_mean_delta_skips_clips_without_bd_quality():
    from codec.eval.report import bd_quality_cell
    from codec.eval.video_report import _mean_delta

    m = _mean_delta({"a": {"bd_rate": -10.0, "bd_quality": 1.0, "warning": None},
                     "b": {"bd_rate": -30.0, "bd_quality": None, "warning": "no shared rate range: no BD-PSNR"}})
    assert m["bd_rate"] == -20.0 and m["bd_quality"] == 1.0 and m["clips"] == 2
    assert bd_quality_cell({"bd_quality": None}) == "-"

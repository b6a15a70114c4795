"""Behaviour of codec.videoio: reading videos and frame folders, lossless and atomic video writing."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from codec import settings
from codec import videoio as vio
from codec.errors import CodecError, InputError, LimitError, UnsupportedError, UsageError

H, W = 32, 48


def clip(count: int = 6, height: int = H, width: int = W, seed: int = 0) -> list[np.ndarray]:
    """Random RGB frames: the hardest case for a lossless coder and a colour conversion."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8) for _ in range(count)]


def write_all(dest: Path | str, frames: list[np.ndarray], fps: Fraction = Fraction(25), **kw) -> int:
    height, width = frames[0].shape[:2]
    with vio.open_writer(dest, width, height, fps, **kw) as out:
        for frame in frames:
            out.write(frame)
    return out.close()


def read_all(source: Path | str, **kw) -> tuple[vio.VideoInfo, list[np.ndarray]]:
    with vio.open_video(source, **kw) as video:
        return video.info, list(video)


def save_pngs(folder: Path, frames: list[np.ndarray], name: str = "{:05d}.png", start: int = 0) -> None:
    folder.mkdir(exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / name.format(i + start))


def x264_mp4(path: Path, frames: list[np.ndarray], fps: Fraction) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- round trips


def test_mkv_ffv1_round_trip_is_bit_exact(tmp_path):
    frames = clip(6, 31, 47)  # odd sizes on purpose
    assert write_all(tmp_path / "out.mkv", frames, Fraction(30000, 1001)) == 6
    with av.open(str(tmp_path / "out.mkv")) as container:
        context = container.streams.video[0].codec_context
        assert (context.name, context.pix_fmt) == ("ffv1", vio.FFV1_PIX_FMT)
    info, back = read_all(tmp_path / "out.mkv")
    assert (info.width, info.height, info.fps) == (47, 31, Fraction(30000, 1001))
    assert len(back) == 6
    for original, decoded in zip(frames, back):
        assert decoded.dtype == np.uint8 and decoded.flags.c_contiguous and decoded.flags.writeable
        np.testing.assert_array_equal(decoded, original)
    assert leftovers(tmp_path) == ["out.mkv"]


def test_png_pattern_round_trip_is_exact(tmp_path):
    frames = clip(5)
    (tmp_path / "f").mkdir()
    assert write_all(tmp_path / "f" / "%05d.png", frames) == 5
    assert leftovers(tmp_path / "f") == [f"{i:05d}.png" for i in range(5)]
    info, back = read_all(tmp_path / "f" / "%05d.png")
    assert (info.width, info.height, info.fps, info.frames) == (W, H, vio.DEFAULT_FPS, 5)
    for original, decoded in zip(frames, back, strict=True):
        np.testing.assert_array_equal(decoded, original)


def test_y4m_round_trip_is_close_but_not_lossless(tmp_path):
    frames = clip(5, 31, 47)
    write_all(tmp_path / "out.y4m", frames, Fraction(24))
    assert (tmp_path / "out.y4m").read_bytes().startswith(b"YUV4MPEG2 W47 H31 F24:1 ")
    info, back = read_all(tmp_path / "out.y4m")
    assert (info.width, info.height, info.fps) == (47, 31, Fraction(24))
    assert len(back) == 5
    for original, decoded in zip(frames, back):
        error = np.abs(decoded.astype(int) - original.astype(int))
        assert error.max() <= 3 and error.mean() < 1


# ---------------------------------------------------------------- reading


def test_window_gives_exactly_those_frames(tmp_path):
    write_all(tmp_path / "v.mkv", clip(8))
    _, everything = read_all(tmp_path / "v.mkv")
    for window, expected in [((2, 5), everything[2:5]), ((5, None), everything[5:]),
                             ((0, 1), everything[:1]), ((6, 100), everything[6:])]:
        _, part = read_all(tmp_path / "v.mkv", frames=window)
        assert len(part) == len(expected)
        for a, b in zip(part, expected):
            np.testing.assert_array_equal(a, b)


def test_window_on_a_folder_reads_only_those_files(tmp_path):
    frames = clip(6)
    save_pngs(tmp_path / "f", frames)
    (tmp_path / "f" / "00000.png").write_bytes(b"not decoded, since the window starts after it")
    info, part = read_all(tmp_path / "f", frames=(2, 4))
    assert info.frames == 2
    for a, b in zip(part, frames[2:4], strict=True):
        np.testing.assert_array_equal(a, b)


def test_window_beyond_the_end_is_refused(tmp_path):
    write_all(tmp_path / "v.mkv", clip(3))
    save_pngs(tmp_path / "f", clip(3))
    for source in (tmp_path / "v.mkv", tmp_path / "f"):
        with pytest.raises(InputError, match="no frame in the requested window 5"):
            vio.open_video(source, frames=(5, 9))


def test_malformed_window_is_a_usage_error(tmp_path):
    write_all(tmp_path / "v.mkv", clip(2))
    for window in [(3, 3), (-1, 2), (4, 1)]:
        with pytest.raises(UsageError):
            vio.open_video(tmp_path / "v.mkv", frames=window)


def test_folder_is_sorted_by_name_with_numbers_compared_as_numbers(tmp_path):
    frames = clip(11)
    folder = tmp_path / "frames"
    save_pngs(folder, frames, name="f{}.png")  # f0 .. f10, not zero-padded
    (folder / "notes.txt").write_text("ignored")
    (folder / ".f99.png.1234.tmp").write_bytes(b"a hidden temporary file, ignored")
    info, back = read_all(folder)
    assert info.frames == 11
    for a, b in zip(back, frames, strict=True):
        np.testing.assert_array_equal(a, b)


def test_glob_input(tmp_path):
    frames = clip(4)
    save_pngs(tmp_path, frames, name="a_{:03d}.png")
    Image.fromarray(clip(1)[0]).save(tmp_path / "other.png")
    info, back = read_all(str(tmp_path / "a_*.png"), fps=Fraction(12))
    assert (info.frames, info.fps) == (4, Fraction(12))
    for a, b in zip(back, frames, strict=True):
        np.testing.assert_array_equal(a, b)


def test_printf_input_numbered_from_one(tmp_path):
    frames = clip(4)
    save_pngs(tmp_path, frames, name="img{:d}.png", start=1)
    Image.fromarray(frames[0]).save(tmp_path / "img6.png")  # after a gap: not part of the sequence
    info, back = read_all(str(tmp_path / "img%d.png"))
    assert info.frames == 4
    for a, b in zip(back, frames, strict=True):
        np.testing.assert_array_equal(a, b)


def test_mp4_from_libx264_is_readable_with_count_and_fps(tmp_path):
    x264_mp4(tmp_path / "in.mp4", clip(7), Fraction(24))
    info, back = read_all(tmp_path / "in.mp4")
    assert (info.width, info.height, info.fps, info.frames) == (W, H, Fraction(24), 7)
    assert len(back) == 7 and all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in back)
    info, part = read_all(tmp_path / "in.mp4", frames=(1, 4))
    assert info.frames == 3 and len(part) == 3
    np.testing.assert_array_equal(part[0], back[1])


def test_frame_of_another_size_in_a_folder_names_the_file(tmp_path):
    folder = tmp_path / "f"
    save_pngs(folder, clip(3))
    Image.fromarray(clip(1, H, W + 2)[0]).save(folder / "00003.png")
    with vio.open_video(folder) as video:
        for _ in range(3):
            next(video)
        with pytest.raises(InputError, match=r"00003\.png is 50x32, but .*00000\.png is 48x32"):
            next(video)
        assert list(video) == []  # closed after the error


def test_missing_sources_are_input_errors(tmp_path):
    for source in [tmp_path / "absent.mp4", tmp_path / "absent" / "%05d.png", str(tmp_path / "*.png")]:
        with pytest.raises(InputError):
            vio.open_video(source)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="without image files"):
        vio.open_video(tmp_path / "empty")


def test_non_video_renamed_mp4_is_one_clean_codec_error(tmp_path):
    path = tmp_path / "fake.mp4"
    path.write_text("this is a text file, not a video\n" * 50)
    with pytest.raises(CodecError) as caught:
        vio.open_video(path)
    assert isinstance(caught.value, UnsupportedError)
    message = str(caught.value)
    assert "fake.mp4" in message and "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert not isinstance(caught.value, av.error.FFmpegError)


def test_file_without_video_stream_is_unsupported(tmp_path):
    path = tmp_path / "sound.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.raises(UnsupportedError, match="no video stream"):
        vio.open_video(path)


def test_max_pixels_is_a_limit_error_naming_the_option(tmp_path):
    write_all(tmp_path / "v.mkv", clip(2))
    save_pngs(tmp_path / "f", clip(2))
    for source in (tmp_path / "v.mkv", tmp_path / "f"):
        with pytest.raises(LimitError, match="--max-pixels"):
            vio.open_video(source, max_pixels=H * W - 1)
        with vio.open_video(source, max_pixels=H * W) as video:
            assert video.info.width == W


def test_is_video_source(tmp_path):
    image = tmp_path / "shot[1].png"
    Image.fromarray(clip(1)[0]).save(image)
    assert vio.is_video_source("clip.mp4") and vio.is_video_source(Path("CLIP.MKV"))
    assert vio.is_video_source("a.y4m") and vio.is_video_source("a.mov")
    assert vio.is_video_source(tmp_path)
    assert vio.is_video_source("frames/*.png") and vio.is_video_source("frames/f?.png")
    assert vio.is_video_source("frames/[ab].png") and vio.is_video_source("frames/%05d.png")
    assert vio.is_video_source("frames/%d.png")
    assert not vio.is_video_source("photo.png") and not vio.is_video_source("anim.gif")
    assert not vio.is_video_source("100%%.png") and not vio.is_video_source("-")
    assert not vio.is_video_source(image)  # an existing image, whatever its name holds
    assert ".gif" not in vio.VIDEO_EXTENSIONS
    assert all(e == e.lower() and e.startswith(".") for e in vio.VIDEO_EXTENSIONS)


def test_real_clip_first_frames():
    folder = settings.data_dir() / "video"
    clips = sorted(folder.glob("*.mp4")) if folder.is_dir() else []
    if not clips:
        pytest.skip(f"no video clips in {folder}")
    with vio.open_video(clips[0], frames=(0, 3)) as video:
        info = video.info
        frames = list(video)
    assert len(frames) == 3 and info.fps > 0
    assert all(f.shape == (info.height, info.width, 3) and f.dtype == np.uint8 for f in frames)


# ---------------------------------------------------------------- writing


@pytest.mark.parametrize("name", ["out.mkv", "out.y4m", "%03d.png"])
def test_existing_output_is_refused_without_force_and_kept(tmp_path, name):
    existing = tmp_path / (name % 0 if "%" in name else name)
    existing.write_bytes(b"precious")
    with pytest.raises(InputError, match=rf"{existing.name} exists; use --force"):
        vio.open_writer(tmp_path / name, W, H, Fraction(25))
    assert existing.read_bytes() == b"precious"
    assert leftovers(tmp_path) == [existing.name]
    write_all(tmp_path / name, clip(2), force=True)
    assert existing.read_bytes() != b"precious"


def test_pattern_refuses_any_existing_numbered_file(tmp_path):
    (tmp_path / "007.png").write_bytes(b"from an earlier run")
    with pytest.raises(InputError, match=r"007\.png exists; use --force"):
        vio.open_writer(tmp_path / "%03d.png", W, H, Fraction(25))


def test_destination_appearing_meanwhile_is_not_overwritten(tmp_path):
    dest = tmp_path / "out.mkv"
    writer = vio.open_writer(dest, W, H, Fraction(25))
    writer.write(clip(1)[0])
    dest.write_bytes(b"someone else's")
    with pytest.raises(InputError, match="exists; use --force"):
        writer.close()
    assert dest.read_bytes() == b"someone else's"
    assert leftovers(tmp_path) == ["out.mkv"]


@pytest.mark.parametrize("name", ["out.mkv", "out.y4m", "%03d.png"])
def test_abort_leaves_no_file_and_no_temporary(tmp_path, name):
    writer = vio.open_writer(tmp_path / name, W, H, Fraction(25))
    for frame in clip(3):
        writer.write(frame)
    assert leftovers(tmp_path)  # something is on disk while writing
    if "%" not in name:
        assert not (tmp_path / name).exists()  # but never the destination itself
    writer.abort()
    assert leftovers(tmp_path) == []
    with pytest.raises(ValueError):
        writer.write(clip(1)[0])


def test_exception_in_with_block_discards_output(tmp_path):
    with pytest.raises(RuntimeError), vio.open_writer(tmp_path / "out.mkv", W, H, Fraction(25)) as out:
        out.write(clip(1)[0])
        raise RuntimeError("pipeline failed")
    assert leftovers(tmp_path) == []


def test_dropped_writer_removes_its_temporary(tmp_path):
    writer = vio.open_writer(tmp_path / "out.mkv", W, H, Fraction(25))
    writer.write(clip(1)[0])
    del writer
    assert leftovers(tmp_path) == []


def test_wrong_frame_shape_is_refused(tmp_path):
    with vio.open_writer(tmp_path / "out.mkv", W, H, Fraction(25)) as out:
        with pytest.raises(ValueError, match=r"\(32, 48, 3\) uint8"):
            out.write(np.zeros((H, W + 1, 3), np.uint8))
        with pytest.raises(ValueError):
            out.write(np.zeros((H, W, 3), np.float32))
        out.write(clip(1)[0])
    assert out.close() == 1


def test_unknown_destination_is_a_usage_error_naming_the_forms(tmp_path):
    for name in ["out.mp4", "out", "%05d.jpg"]:
        with pytest.raises(UsageError, match=r"\.mkv|\.png"):
            vio.open_writer(tmp_path / name, W, H, Fraction(25))
    assert leftovers(tmp_path) == []


def test_missing_output_folder_is_an_input_error(tmp_path):
    for name in ["no/out.mkv", "no/%05d.png"]:
        with pytest.raises(InputError, match="does not exist"):
            vio.open_writer(tmp_path / name, W, H, Fraction(25))


def test_written_file_keeps_umask_permissions(tmp_path):
    write_all(tmp_path / "out.mkv", clip(1))
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out.mkv").stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("name", ["out.mkv", "out.y4m"])
@pytest.mark.parametrize("fps", [Fraction(1 << 31, (1 << 31) - 1), Fraction(1, 1 << 31)])
def test_a_frame_rate_with_terms_of_2_to_the_31_is_refused_before_writing(tmp_path, name, fps):
    """Found: the .mkv/.y4m writer crashed with OverflowError (exit 1) on such a rate."""
    with pytest.raises(UsageError, match="2\\^31"):
        vio.open_writer(tmp_path / name, W, H, fps)
    assert leftovers(tmp_path) == []
    edge = Fraction((1 << 31) - 1, (1 << 31) - 2)
    write_all(tmp_path / name, clip(1), edge)
    assert read_all(tmp_path / name)[1][0].shape == (H, W, 3)

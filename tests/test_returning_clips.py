"""Clips with returning scenes (codec.eval.returning, issue 18): A B A B segments continue each clip,
pans come back to the first view, cuts and returns point at the right frames, sizes are multiples of 16."""

from __future__ import annotations

import numpy as np
import pytest

from codec.errors import UsageError
from codec.eval.returning import MULTIPLE, alternate, common_size, cut, pan


def numbered_clip(tag: int, n: int, h: int, w: int) -> list[np.ndarray]:
    """Frames whose pixels say where they come from: channel 0 = tag, 1 = frame number, 2 = row + column
    (mod 256), so a crop's origin can be read back."""
    yy, xx = np.mgrid[0:h, 0:w]
    return [np.stack([np.full((h, w), tag), np.full((h, w), k), (yy + xx) % 256], -1).astype(np.uint8)
            for k in range(n)]


def still(h: int = 64, w: int = 200) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_alternate_continues_each_clip_where_it_stopped():
    a, b = numbered_clip(1, 40, 50, 70), numbered_clip(2, 30, 40, 90)
    clip = alternate([a, b], segment=3, repeats=4)
    assert len(clip.frames) == 24
    tags = [int(f[0, 0, 0]) for f in clip.frames]
    numbers = [int(f[0, 0, 1]) for f in clip.frames]
    assert tags == [1, 1, 1, 2, 2, 2] * 4
    assert [n for n, t in zip(numbers, tags) if t == 1] == list(range(12))
    assert [n for n, t in zip(numbers, tags) if t == 2] == list(range(12))
    assert [(o.source, o.frame) for o in clip.origins] == [(t - 1, n) for t, n in zip(tags, numbers)]


def test_alternate_segments_have_the_asked_length_and_cuts_fall_between_them():
    clip = alternate([numbered_clip(1, 16, 32, 32), numbered_clip(2, 16, 32, 32)], segment=4, repeats=3)
    assert clip.cuts == (4, 8, 12, 16, 20)
    segments = clip.segments()
    assert [s["frames"] for s in segments] == [[0, 4], [4, 8], [8, 12], [12, 16], [16, 20], [20, 24]]
    assert [s["source_frames"] for s in segments] == [[0, 4], [0, 4], [4, 8], [4, 8], [8, 12], [8, 12]]
    assert [s["source"] for s in segments] == [0, 1, 0, 1, 0, 1]


def test_each_return_points_at_the_last_frame_of_the_same_clip_before_the_cut():
    a, b = numbered_clip(1, 20, 32, 48), numbered_clip(2, 20, 32, 48)
    clip = alternate([a, b], segment=5, repeats=3)
    assert clip.returns == ((10, 4), (15, 9), (20, 14), (25, 19))
    for frame, earlier in clip.returns:
        assert clip.origins[frame].source == clip.origins[earlier].source
        assert clip.origins[frame].frame == clip.origins[earlier].frame + 1
        assert all(clip.origins[k].source != clip.origins[frame].source for k in range(earlier + 1, frame))


def test_alternate_crops_both_clips_at_the_centre_to_a_common_multiple_of_16():
    a, b = numbered_clip(1, 4, 50, 70), numbered_clip(2, 4, 40, 90)
    clip = alternate([a, b], segment=2, repeats=2)
    assert clip.size == (32, 64)
    assert clip.origins[0].top == (50 - 32) // 2 and clip.origins[0].left == (70 - 64) // 2
    assert clip.origins[2].top == (40 - 32) // 2 and clip.origins[2].left == (90 - 64) // 2
    for f, o in zip(clip.frames, clip.origins):
        assert f.shape == (32, 64, 3) and f.dtype == np.uint8 and f.flags.c_contiguous
        assert int(f[0, 0, 2]) == (o.top + o.left) % 256


def test_common_size_rounds_down_to_multiples_of_16():
    assert common_size([(288, 352), (360, 480)]) == (288, 352)
    assert common_size([(480, 640), (272, 640)]) == (272, 640)
    assert common_size([(360, 640), (479, 700)]) == (352, 640)
    with pytest.raises(UsageError):
        common_size([(15, 640), (100, 100)])


def test_pan_returns_exactly_to_the_first_window():
    s = still()
    clip = pan(s, 32, 48, frames=10)
    lefts = [o.left for o in clip.origins]
    assert lefts[0] == 0 and max(lefts) + 48 <= 200 and max(lefts) > 200 - 48 - 200 // 4
    steps = np.diff(lefts)
    assert len(set(np.abs(steps[steps != 0]).tolist())) == 1  # one whole-pixel step, out and back
    np.testing.assert_array_equal(clip.frames[-1], clip.frames[0])
    np.testing.assert_array_equal(clip.frames[0], s[16:48, 0:48])
    assert clip.cuts == ()
    assert clip.returns == ((5, 4), (6, 3), (7, 2), (8, 1), (9, 0))
    for frame, earlier in clip.returns:
        np.testing.assert_array_equal(clip.frames[frame], clip.frames[earlier])


def test_cut_goes_far_and_comes_back_where_the_drift_left_off():
    s = still(64, 256)
    clip = cut(s, 32, 48, frames=20, segment=6, drift=1)
    lefts = [o.left for o in clip.origins]
    assert lefts[:6] == list(range(6)) and lefts[12:] == list(range(6, 14))
    assert lefts[11] + 48 == 256  # B ends at the right edge
    assert min(lefts[6:12]) >= max(lefts[:6] + lefts[12:]) + 48  # B never overlaps A
    assert clip.cuts == (6, 12) and clip.returns == ((12, 5),)
    np.testing.assert_array_equal(clip.frames[12], s[16:48, 6:54])
    assert [seg["frames"] for seg in clip.segments()] == [[0, 6], [6, 12], [12, 20]]


def test_windows_that_are_not_multiples_of_16_or_do_not_fit_are_refused():
    with pytest.raises(UsageError, match="multiples of 16"):
        pan(still(), 30, 48, frames=8)
    with pytest.raises(UsageError, match="does not fit"):
        pan(still(), 80, 48, frames=8)
    with pytest.raises(UsageError, match="overlap"):
        cut(still(64, 96), 32, 48, frames=20, segment=6)
    with pytest.raises(UsageError):
        alternate([numbered_clip(1, 5, 32, 32), numbered_clip(2, 8, 32, 32)], segment=3, repeats=2)
    assert MULTIPLE == 16

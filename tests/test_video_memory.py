"""VCT's latent memory (issue 18): a returning scene is coded inter against a remembered intra frame,
both sides hold and rank the same entries, seeking rebuilds the memory from the index, it stays
bounded, and damaged references are format errors."""

from __future__ import annotations

import io
from fractions import Fraction

import numpy as np
import pytest
import torch

from codec.container.video import INTER_MEM, INTRA, VideoHeader
from codec.errors import FormatError
from codec.pipeline.vct_memory import Entry, LatentMemory, distance

from test_vct import _encode, _pixels, moving_frames

from codec.testing import golden_video as golden


def _returning(n_b: int = 3) -> list[np.ndarray]:
    """Scene A (the golden carphone frames, cropped to 96x128), a cut to scene B (the same turned
    upside down) for n_b frames, a cut back to A where it left off."""
    a = [np.ascontiguousarray(f[:96, :128]) for f in golden.source_frames()]
    b = [np.ascontiguousarray(f[::-1, ::-1]) for f in a]
    return a[:3] + b[:n_b] + a[3:6]


@pytest.fixture(scope="module")
def shipped():
    from codec.pipeline.video import load_video_model

    return load_video_model(None)


def test_the_ranking_is_by_exact_l1_distance_and_the_newer_first_among_equals():
    z = np.array([[3, -2], [0, 7]], np.int32)
    mem = LatentMemory(3)
    for number, (slot, delta) in enumerate([(0, 5), (1, 1), (2, 1), (0, 9)]):  # the fourth replaces the first
        mem.store(Entry(number, slot, (), z + np.int32(delta)))
    assert len(mem) == 3 and [e.number for e in mem.entries] == [1, 2, 3]
    assert [(d, e.number) for d, e in mem.ranked(z)] == [(4, 2), (4, 1), (36, 3)]
    assert distance(np.array([2**31 - 1], np.int32), np.array([-2**31], np.int32)) == 2**32 - 1  # no overflow


def test_the_encoder_policy_keeps_one_slot_a_scene():
    from codec.pipeline.vct_memory import SAME_SCENE

    rng = np.random.default_rng(0)
    scenes = [rng.integers(-3, 4, (8, 4, 4)).astype(np.int32) for _ in range(3)]
    mem = LatentMemory(2)
    near = lambda z: (z + (rng.random(z.shape) < SAME_SCENE / 4)).astype(np.int32)  # noqa: E731
    slots = []
    for n, s in enumerate([0, 0, 0, 1, 1, 1, 0, 2]):  # scene A intra thrice, B thrice, A, then a new C
        z = near(scenes[s])
        slot = mem.choose_slot(z)
        slots.append(slot)
        mem.store(Entry(n, slot, (), z))
    assert slots[:7] == [0, 0, 0, 1, 1, 1, 0]  # a scene seen again replaces its own entry
    assert slots[7] == 1  # a new scene takes the slot least recently stored or used (B's, not A's)


def test_a_returning_scene_is_coded_against_the_memory_and_decodes_exactly(shipped):
    from codec.pipeline.video import VideoDecoder

    frames = _returning()
    data, stats = _encode(shipped, frames, gop=32, quality=40, memory=4)
    plain, plain_stats = _encode(shipped, frames, gop=32, quality=40)
    assert stats.modes[3] == INTRA and stats.modes[6] == INTER_MEM  # the cut to B, the cut back to A
    assert INTER_MEM not in plain_stats.modes and plain_stats.modes[6] == INTRA
    assert stats.frame_bytes[6] < 0.6 * plain_stats.frame_bytes[6]  # against A's first frame, not intra
    assert len(data) < 0.9 * len(plain)
    dec = VideoDecoder(io.BytesIO(data), shipped)
    assert dec.video.memory == 4
    for (n, pixels), y_hat in zip(dec.frames(), stats.latents):
        assert torch.equal(dec.latent, y_hat)  # the decoder ranked and used the same entry, bit for bit


def test_seeking_rebuilds_the_memory_from_the_index(shipped):
    from codec.container.video import VideoReader
    from codec.pipeline.video import VideoDecoder

    frames = _returning() + [_returning()[0]]
    data, stats = _encode(shipped, frames, gop=8, quality=40, memory=2)
    # the index lists every intra frame (0, the cut at 3, the scheduled 8) with its slot, GOPs start at 0 and 8
    index = VideoReader(io.BytesIO(data)).index()
    assert [f for f, _, _ in index.intra] == [n for n, m in enumerate(stats.modes) if m == INTRA] == [0, 3, 8]
    assert [slot for _, _, slot in index.intra] == [0, 1, 0]  # A, B, A again in A's slot
    assert [f for f, _ in index.gops] == [0, 8]
    assert stats.modes[6] == INTER_MEM and len(stats.modes) == 10
    full = VideoDecoder(io.BytesIO(data), shipped)
    latents = {}
    for n, _ in full.frames():
        latents[n] = full.latent
    for start in range(1, len(frames)):
        part = VideoDecoder(io.BytesIO(data), shipped)
        numbers = []
        for n, _ in part.frames(start):
            numbers.append(n)
            assert torch.equal(part.latent, latents[n]), (start, n)
        assert numbers == list(range(start, len(frames)))


def test_the_memory_stays_bounded_over_a_long_clip_of_many_scenes(tiny_vct):
    from codec.pipeline.rate import rate_for
    from codec.pipeline.vct import FrameCoder

    rng = np.random.default_rng(1)
    mem = LatentMemory(3)
    for n in range(200):  # 200 intra frames of 200 different scenes
        z = rng.integers(-5, 6, (8, 4, 4)).astype(np.int32)
        mem.store(Entry(n, mem.choose_slot(z), (), z))
        assert len(mem) == min(n + 1, 3) and len(mem.slots) == 3
    assert [e.number for e in mem.entries] == [197, 198, 199]  # the least recently stored went first
    model = tiny_vct()
    fc = FrameCoder(model, rate_for(model, quality=40), 2, memory=3)
    scenes = [moving_frames(1, 64, 64, seed=s)[0] for s in range(8)]  # one stride: no padding needed
    for n in range(24):  # the coder itself: a keyframe every second frame, a new scene every third
        x = torch.from_numpy(scenes[n // 3]).permute(2, 0, 1)[None].float().div(255)
        fc.encode(x, n % 2 == 0)
        assert 1 <= len(fc.memory) <= 3
    assert fc.memory.entries[-1].number == 22  # the newest intra frame is kept


def test_damaged_memory_references_are_format_errors(shipped):
    from codec.container.video import Frame, VideoReader
    from codec.pipeline.rate import rate_for
    from codec.pipeline.vct import FrameCoder

    data, stats = _encode(shipped, _returning(), gop=32, quality=40, memory=4)
    frames = list(VideoReader(io.BytesIO(data)).frames())
    rate = rate_for(shipped, quality=40)
    shape = (128 // 16, 128 // 16)  # the frame padded to the stride, 64

    def decode_with(mem: int, frame6: Frame):
        fc = FrameCoder(shipped, rate, 32, memory=mem)
        for f in frames[:6 if mem else 0]:  # (without a memory its intra frames are refused: a slot too many)
            fc.decode(f, shape)
        return fc.decode(frame6, shape)

    f6 = frames[6]
    assert f6.mode == INTER_MEM
    assert torch.equal(decode_with(4, f6), stats.latents[6])  # as written
    bad_rank = Frame(f6.number, f6.mode, (bytes([7, 255]),) + f6.streams[1:], f6.offset, f6.size)
    with pytest.raises(FormatError, match="memory entry 7 of 3"):  # A0, B0 and A2 (the frame the cut left)
        decode_with(4, bad_rank)
    f3 = frames[3]
    assert f3.mode == INTRA and f3.streams[2] == bytes([1, 2])  # the cut to B in slot 1, A2 (the frame before) in 2

    def decode_f3(slots: bytes, first: Frame = frames[0]):
        fc = FrameCoder(shipped, rate, 32, memory=4)
        fc.decode(first, shape)
        return fc.decode(Frame(3, INTRA, f3.streams[:2] + (slots,), f3.offset, f3.size), shape)

    assert torch.equal(decode_f3(bytes([1, 2])), stats.latents[3])
    for slots in (bytes([4, 255]), bytes([1]), bytes([1, 2, 3])):  # a slot beyond the memory, a version-5 stream
        with pytest.raises(FormatError, match="slot"):
            decode_f3(slots)
    with pytest.raises(FormatError, match="frame before a cut"):
        decode_f3(bytes([1, 4]))
    f0 = frames[0]
    with pytest.raises(FormatError, match="before a keyframe"):  # frame 0 storing a frame before it
        decode_f3(bytes([1, 2]), Frame(0, INTRA, f0.streams[:2] + (bytes([0, 1]),), f0.offset, f0.size))
    with pytest.raises(FormatError, match="without one"):
        decode_with(0, f6)
    with pytest.raises(FormatError):
        VideoHeader.unpack(VideoHeader(Fraction(25), 8).pack() + b"\x00")  # a memory of 0 written out
    assert VideoHeader.unpack(VideoHeader(Fraction(25), 8, 9).pack()).memory == 9


def test_a_memory_in_an_older_version_file_is_refused(tiny_vct):
    from codec.container.format import PREAMBLE_SIZE, pack_preamble, unpack_preamble
    from codec.container.video import VideoReader

    data, _ = _encode(tiny_vct(), moving_frames(2, 32, 48), gop=32, quality=40, memory=2)
    assert unpack_preamble(data[:PREAMBLE_SIZE]) == (6, 6)  # writer and minimum reader version 6
    old = pack_preamble(3, 3) + data[PREAMBLE_SIZE:]
    with pytest.raises(FormatError, match="memory"):
        VideoReader(io.BytesIO(old))


@pytest.mark.parametrize("threads", [1, 2, 8])
def test_retrieval_and_decoding_are_the_same_in_fresh_processes_with_any_thread_count(shipped, threads, tmp_path):
    """A decoder in this process against one in a fresh process with `threads` threads: the same
    memory entry ranked first, the same latents bit for bit (the encoder's equal them in value,
    test above; its inter latents hold -0.0 where the decoder's hold 0.0, so bytes are compared
    between decoders)."""
    from codec.testing.determinism import run_probe
    from codec.testing.digests import decode_video_with_latents_sha256

    data, stats = _encode(shipped, _returning(), gop=32, quality=40, memory=4)
    assert INTER_MEM in stats.modes
    path = tmp_path / "returning.bin"
    path.write_bytes(data)
    row = run_probe(path, tmp_path / "pixels.npy", threads, "default", "best")
    assert row["threads"] == threads and row["symbols"] == decode_video_with_latents_sha256(data, shipped)[1][:16]


def test_the_version_5_index_lists_every_intra_frame_with_its_gop_flag_and_slot():
    from codec.container import Limits
    from codec.container.video import FrameIndex

    index = FrameIndex(12, ((0, 100), (8, 900)), ((0, 100, 0), (3, 400, 1), (8, 900, 255)))
    data = index.pack(5)
    assert len(data) == 12 + 14 * 3
    assert FrameIndex.unpack(data, Limits(), 5) == index
    assert FrameIndex.unpack(index.pack(3), Limits(), 3) == FrameIndex(12, ((0, 100), (8, 900)))
    bad = bytearray(data)
    bad[8 + 14 + 12] = 2  # the flag of frame 3
    with pytest.raises(FormatError, match="flag"):
        FrameIndex.unpack(bytes(bad), Limits(), 5)
    no_start = bytearray(data)
    no_start[8 + 12] = 0  # frame 0 no longer starts a GOP
    with pytest.raises(FormatError):
        FrameIndex.unpack(bytes(no_start), Limits(), 5)


def test_seeking_with_an_index_whose_slot_disagrees_with_the_frame_is_a_format_error(shipped):
    from codec.container.format import FIDX
    from codec.container.framing import frame_chunk
    from codec.container.video import FrameIndex, VideoReader
    from codec.pipeline.video import VideoDecoder

    frames = _returning() + [_returning()[0]]
    data, _ = _encode(shipped, frames, gop=8, quality=40, memory=2)
    index = VideoReader(io.BytesIO(data)).index()
    assert [s for _, _, s in index.intra] == [0, 1, 0]
    (f0, f3, f8) = index.intra
    wrong = FrameIndex(index.frames, index.gops, (f0, (3, f3[1], 0), f8))  # frame 3 listed in slot 0
    old = frame_chunk(FIDX, index.pack(5))
    assert data.count(old) == 1
    forged = data.replace(old, frame_chunk(FIDX, wrong.pack(5)))
    assert len(forged) == len(data)
    with pytest.raises(FormatError, match="slot 1, the index says 0"):
        list(VideoDecoder(io.BytesIO(forged), shipped).frames(9))


def test_a_cut_stores_the_frame_it_leaves_until_the_next_keyframe(shipped):
    """Version 6: the cut to B stores A2 (the last view of A), the cut back stores B2; such entries of
    inter frames last until the keyframe, which leaves exactly the intra entries a seeking decoder
    rebuilds from the index."""
    from codec.container.video import VideoReader
    from codec.io import pad_to_multiple
    from codec.models.hyperprior import STRIDE
    from codec.pipeline.rate import rate_for
    from codec.pipeline.vct import FrameCoder

    frames = _returning() + [_returning()[0]]
    rate = rate_for(shipped, quality=40)
    fc = FrameCoder(shipped, rate, 8, memory=4)
    held = []
    for n, f in enumerate(frames):
        padded, _ = pad_to_multiple(f, STRIDE)
        fc.encode(torch.from_numpy(padded).permute(2, 0, 1)[None].float().div(255), n % 8 == 0)
        held.append(sorted((e.number, e.intra) for e in fc.memory.entries))
    assert held[3] == [(0, True), (2, False), (3, True)]  # A0, A2 (the frame the cut left), B0
    assert held[6] == [(0, True), (2, False), (3, True), (5, False)]  # + B2, left by the cut back
    assert all(intra for _, intra in held[8])  # the keyframe dropped both
    assert len(held[8]) <= 3 and max(len(h) for h in held) <= 4
    data, stats = _encode(shipped, frames, gop=8, quality=40, memory=4)
    index = VideoReader(io.BytesIO(data)).index()
    last = {slot: f for f, _, slot in index.intra if f <= 8}  # what a decoder seeking to 8 rebuilds (and 8 itself)
    assert sorted(last.values()) == [n for n, _ in held[8]]


def test_the_frame_a_cut_left_makes_the_cut_back_cheaper(shipped):
    """A B A B where the scenes continue: the cut backs coded against the frame each cut left cost less
    than against the scene's first frame (version 5, the same encoder otherwise)."""
    a = _returning()
    frames = a[:6] + a[6:9] + a[3:6] + a[6:9]  # A0-2 B0-2 A3-5 B0-2 A3-5
    v6, s6 = _encode(shipped, frames, gop=32, quality=40, memory=4)
    v5, s5 = _encode(shipped, frames, gop=32, quality=40, memory=4, scene_ends=False)
    assert s6.modes[6] == s5.modes[6] == INTER_MEM and s6.modes[12] == s5.modes[12] == INTER_MEM
    assert s6.frame_bytes[6] + s6.frame_bytes[12] < 0.9 * (s5.frame_bytes[6] + s5.frame_bytes[12])
    assert len(v6) < len(v5)


def test_a_full_memory_gives_a_drifting_scene_its_nearest_slot_and_a_new_scene_the_least_recent():
    from codec.pipeline.vct_memory import NEAR_SCENE, SAME_SCENE

    rng = np.random.default_rng(3)
    a, b = (rng.integers(-3, 4, (8, 4, 4)).astype(np.int32) for _ in range(2))
    mem = LatentMemory(2)
    mem.store(Entry(0, 0, (), a))
    mem.store(Entry(1, 1, (), b))  # full; slot 0 (A) the least recently used
    drift = b.copy()
    flat = drift.reshape(-1)
    flat[: int((SAME_SCENE + NEAR_SCENE) / 2 * b.size)] += 1  # B moved on: past SAME_SCENE, within NEAR_SCENE
    assert SAME_SCENE * b.size < distance(drift, b) <= NEAR_SCENE * b.size
    assert mem.choose_slot(drift) == 1  # B's own slot, not A's (the least recently used)
    assert mem.choose_slot(rng.integers(-3, 4, (8, 4, 4)).astype(np.int32)) == 0  # a new scene: the least recent
    assert mem.choose_slot(drift, intra=False, taken=1) == 0  # never the slot the cutting frame takes

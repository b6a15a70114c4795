"""The decoder under damaged input: mutations of valid image and video bitstreams (truncation, flipped
bytes, chunks duplicated, moved or dropped, huge length fields; with and without CRC repair) end in a
decode that matches the header or in a CodecError of exit code 3, 4 or 5, never another exception.

The mutations and the decode are those of the fuzz target (codec.testing.mutations and
codec.testing.fuzz_target, which scripts/fuzz_target.py runs under atheris; seeds in
tests/fuzz_corpus/), here without atheris. Each bug found while building the fuzzer has a test at the
end, on the smallest input that shows it.
"""

from __future__ import annotations

import io
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec.container import Limits, read_container, write_container
from codec.errors import FormatError, LimitError, ModelError
from codec.testing import fuzz_target as ft
from codec.testing import mutations as mu

REPO = Path(__file__).resolve().parent.parent

CORPUS = REPO / "tests" / "fuzz_corpus"  # the seeds (*.bin) and inputs merged by `MERGE=1 scripts/fuzz.sh`
SEEDS = {p.name: p.read_bytes() for p in sorted(CORPUS.glob("*.bin"))}
IMAGES = sorted(n for n in SEEDS if n.startswith("image-"))
VIDEOS = sorted(n for n in SEEDS if n.startswith("video-"))
PLAIN = "image-hyperprior-mse-l0067-16x16.bin"  # HEAD, ZSTR, YSTR, END
VIDEO = "video-vct-l0067-48x32-gop4-modes0011.bin"  # one GOP of 4 frames: intra, intra, inter, inter


@pytest.fixture(scope="module", autouse=True)
def models():
    ft.load_models()


_op = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 4096)),
    st.tuples(st.just("flip"), st.integers(0, 4096), st.integers(1, 255)),
    st.tuples(st.sampled_from(["duplicate", "move"]), st.integers(0, 15), st.integers(0, 15)),
    st.tuples(st.just("drop"), st.integers(0, 15)),
    st.tuples(st.just("huge_length"), st.integers(0, 15), st.sampled_from(mu.HUGE_LENGTHS)),
)


def _apply(data: bytes, ops: list[tuple], repair: bool) -> bytes:
    for op in ops:
        if op[0] == "truncate":
            data = data[: op[1] % (len(data) + 1)]
        elif op[0] == "flip":
            damaged = bytearray(data)
            if damaged:
                damaged[op[1] % len(damaged)] ^= op[2]
            data = bytes(damaged)
        elif op[0] == "huge_length":
            data = mu.mutate(data, "huge_length", op[1], length=op[2])
        else:
            data = mu.mutate(data, *op)
    return mu.repair_crcs(data) if repair else data


_SETTINGS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=300, **_SETTINGS)
@given(st.sampled_from(IMAGES), st.lists(_op, min_size=1, max_size=3), st.booleans())
def test_mutated_image_decodes_to_its_header_size_or_raises_a_codec_error(name, ops, repair):
    ft.fuzz_one(_apply(SEEDS[name], ops, repair))


@settings(max_examples=120, **_SETTINGS)
@given(st.sampled_from(VIDEOS), st.lists(_op, min_size=1, max_size=3), st.booleans())
def test_mutated_video_decodes_to_its_header_size_or_raises_a_codec_error(name, ops, repair):
    ft.fuzz_one(_apply(SEEDS[name], ops, repair))


# --- the target and its helpers -------------------------------------------------------------------


def test_corpus_has_images_of_each_family_and_videos_of_both_versions():
    assert {read_container(SEEDS[n]).header.model_id for n in IMAGES} >= {"hyperprior-mse-l0067", "m2t-vr"}
    assert {SEEDS[n][8:12] for n in VIDEOS} == {struct.pack("<HH", 2, 2), struct.pack("<HH", 3, 3)}
    assert sum(p.stat().st_size for p in CORPUS.iterdir()) < 200_000


def test_fuzz_target_decodes_every_seed_and_refuses_other_inputs_cleanly():
    for name, data in SEEDS.items():
        assert ft.decode(data) == (1 if name in IMAGES else len(name.split("modes")[1].split(".")[0])), name
    for path in sorted(CORPUS.iterdir()):
        ft.fuzz_one(path.read_bytes())
    rng = random.Random(0)
    for size in (0, 1, 7, 16, 40, 300):
        junk = bytes(rng.randrange(256) for _ in range(size))
        for data in (junk, mu.repair_crcs(SEEDS[PLAIN][:16] + junk), mu.repair_crcs(SEEDS[VIDEOS[0]][:40] + junk)):
            ft.fuzz_one(data)


def test_repairing_a_valid_file_changes_nothing_and_repairs_a_damaged_crc():
    for data in SEEDS.values():
        assert mu.repair_crcs(data) == data
    data = SEEDS[PLAIN]
    start, end = mu.chunk_spans(data)[-2]  # YSTR
    damaged = bytearray(data)
    damaged[end - 5] ^= 0x10  # last byte of its data
    with pytest.raises(FormatError, match="CRC mismatch"):
        read_container(bytes(damaged))
    assert read_container(mu.repair_crcs(bytes(damaged))).header == read_container(data).header


def test_chunk_mutations_duplicate_move_drop_and_lengthen_a_chunk():
    data = SEEDS[PLAIN]
    spans = mu.chunk_spans(data)
    types = [data[a + 4 : a + 8] for a, _ in spans]
    assert types == [b"HEAD", b"ZSTR", b"YSTR", b"END "] and spans[-1][1] == len(data)
    after = {op: mu.mutate(data, op, 1, 2 if op == "move" else 3) for op in mu.CHUNK_OPS}
    assert [after["duplicate"][a + 4 : a + 8] for a, _ in mu.chunk_spans(after["duplicate"])] == \
        [b"HEAD", b"ZSTR", b"YSTR", b"ZSTR", b"END "]
    assert [after["move"][a + 4 : a + 8] for a, _ in mu.chunk_spans(after["move"])] == \
        [b"HEAD", b"YSTR", b"ZSTR", b"END "]
    assert len(after["drop"]) == len(data) - (spans[1][1] - spans[1][0])
    assert after["huge_length"][spans[1][0] : spans[1][0] + 4] == b"\xff\xff\xff\xff"
    assert mu.mutate(b"short", "drop", 0) == b"short"


def test_fuzz_harness_runs_without_atheris_and_leaves_the_decode_path_unimported():
    """atheris is an optional extra; and scripts/fuzz_target.py imports the harness before atheris
    instruments the decode path, so the harness must not import the decoder's modules itself."""
    code = ("import sys; sys.modules['atheris'] = None; "
            "from codec.testing import fuzz_target, mutations; "
            "assert not {'codec.container', 'codec.coder', 'codec.pipeline'} & set(sys.modules), sorted(sys.modules); "
            "mutations.mutate_input(b'not a bitstream', 64, 0, lambda data, size: data); "
            "fuzz_target.fuzz_one(b'not a bitstream')")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_fuzzer_mutation_repairs_crcs_for_about_half_of_the_seeds():
    """With libFuzzer's mutation stubbed out (it needs a running fuzzer): a byte flip per call."""
    def flip(data: bytes, max_size: int) -> bytes:
        return data[:100] + bytes([data[100] ^ 1]) + data[101:]

    data = SEEDS[PLAIN]
    outs = [mu.mutate_input(data, 4096, seed, flip) for seed in range(200)]
    assert all(isinstance(out, bytes) and 0 < len(out) <= 4096 for out in outs)
    assert 60 < sum(out == mu.repair_crcs(out) for out in outs) < 140


# --- bugs found while building the fuzzer, each on its smallest input ------------------------------


def _with_index(data: bytes, body: bytes) -> bytes:
    """A video file with its FIDX payload replaced by ``body`` + its length, CRCs repaired."""
    start, end = mu.chunk_spans(data)[-2]
    payload = body + struct.pack("<I", len(body) + 4)
    return mu.repair_crcs(data[:start] + struct.pack("<I", len(payload)) + b"FIDX" + payload + bytes(4) + data[end:])


def test_frame_index_without_gops_is_corrupt_not_a_value_error():
    """Found: a FIDX listing frames but no GOP made seeking raise ValueError (max of an empty sequence)."""
    from codec.pipeline.video import VideoDecoder

    data = _with_index(SEEDS[VIDEO], struct.pack("<II", 4, 0))
    for window in ((3, None), (3, 4)):
        with pytest.raises(FormatError, match="no GOP"):
            list(VideoDecoder(io.BytesIO(data)).frames(*window))


def test_window_past_a_gop_offset_that_misses_its_frames_is_corrupt_not_empty():
    """Found: a GOP offset pointing at FIDX made a window decode (`--frames A:B`) yield no frame and no
    error (the CLI then said "no frame decoded", exit 2)."""
    from codec.pipeline.video import VideoDecoder

    data = SEEDS[VIDEO]
    spans = mu.chunk_spans(data)
    frames = [a for a, _ in spans if data[a + 4 : a + 8] == b"FRAM"]
    body = struct.pack("<II", 4, 2) + struct.pack("<IQ", 0, frames[0]) + struct.pack("<IQ", 2, spans[-2][0])
    with pytest.raises(FormatError, match="index lists 4 frames, the file holds 2"):
        list(VideoDecoder(io.BytesIO(_with_index(data, body))).frames(3, 4))


def test_max_frames_stops_before_the_frame_over_the_limit():
    """Found: with max_frames n the reader decoded n + 1 frames before refusing the file."""
    from codec.pipeline.video import VideoDecoder

    dec, decoded = VideoDecoder(io.BytesIO(SEEDS[VIDEO]), None, Limits(max_frames=3)), []
    with pytest.raises(LimitError, match="frame count is 4, over the limit of 3"):
        for number, _ in dec.frames():
            decoded.append(number)
    assert decoded == [0, 1, 2]
    assert len(list(VideoDecoder(io.BytesIO(SEEDS[VIDEO]), None, Limits(max_frames=4)).frames())) == 4


def test_image_naming_a_video_model_is_a_model_error():
    """Found: an image HEAD naming a video model with its weights hash raised AttributeError (z_pmf)."""
    from codec.pipeline.image import decompress
    from codec.weights import load_model

    c = read_container(SEEDS[PLAIN])
    vct = load_model("vct-l0067")
    header = type(c.header)(**{**c.header.__dict__, "model_id": vct.model_id,
                               "weights_sha256_prefix": vct.sha256_prefix})
    data = write_container(header, c.streams)
    for model in (None, vct):
        with pytest.raises(ModelError, match="'vct-l0067' is a video model"):
            decompress(data, model)
    with pytest.raises(ModelError):
        ft.decode(data)

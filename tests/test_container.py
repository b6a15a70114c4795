"""Behaviour of the container: round trips, damage detection, order rules, limits, isolation."""

from __future__ import annotations

import io
import json
import random
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec.container import (
    END,
    FORMAT_VERSION,
    IMAGE_VERSION,
    HEAD,
    META,
    SIGNATURE,
    YSTR,
    ZSTR,
    Container,
    Header,
    Limits,
    describe,
    frame_chunk,
    iter_chunks,
    pack_header,
    read_container,
    unpack_header,
    write_container,
)
from codec.container.framing import FileBytes, read_chunk
from codec.errors import CodecError, FormatError, LimitError, UnsupportedError

ROOT = Path(__file__).resolve().parents[1]

HEADER = Header(
    kind=0,
    width=100,
    height=75,
    pad_right=28,
    pad_bottom=53,
    bit_depth=8,
    channels=3,
    quality=3,
    weights_sha256_prefix=bytes.fromhex("0123456789abcdef"),
    model_id="hyperprior-tiny",
    coder="constriction",
    coder_version="0.5.0",
)
_rng = random.Random(1234)
Z_BYTES = bytes(_rng.randrange(256) for _ in range(96))
Y_BYTES = bytes(_rng.randrange(256) for _ in range(112))
META_DICT = {"encoder": "codec", "version": "0.1.0"}
STREAMS = [(ZSTR, Z_BYTES), (YSTR, Y_BYTES)]
FILE = write_container(HEADER, STREAMS, META_DICT)


def preamble(writer: int, min_reader: int) -> bytes:
    """A preamble with a valid CRC for any pair of versions."""
    head = SIGNATURE + struct.pack("<HH", writer, min_reader)
    return head + struct.pack("<I", zlib.crc32(head))


def split_chunks(data: bytes) -> tuple[bytes, list[bytes]]:
    """The preamble and each framed chunk of a valid file, as raw bytes."""
    chunks = [data[c.offset : c.end] for c in read_container(data).chunks]
    return data[:16], chunks


def assert_detected(data: bytes) -> None:
    """Reading ``data`` raises FormatError or UnsupportedError, nothing else, never a result."""
    try:
        read_container(data)
    except (FormatError, UnsupportedError):
        return
    pytest.fail("damage went undetected")


# --- round trip ---------------------------------------------------------------------------


def test_round_trip_keeps_header_streams_and_meta():
    c = read_container(FILE)
    assert c.writer_version == IMAGE_VERSION == 1 and c.min_reader_version == 1  # images: version 1 bytes
    assert c.header == HEADER
    assert c.get(ZSTR) == Z_BYTES and c.get(YSTR) == Y_BYTES
    assert c.streams == ((ZSTR, Z_BYTES), (YSTR, Y_BYTES))
    assert c.meta == META_DICT
    assert [ch.type for ch in c.chunks] == [HEAD, META, ZSTR, YSTR, END]
    assert c.size == len(FILE)
    assert c.header.padded_width == 128 and c.header.padded_height == 128


def test_writer_is_deterministic_and_reader_accepts_bytearray_and_memoryview():
    assert write_container(HEADER, STREAMS, META_DICT) == FILE
    assert read_container(bytearray(FILE)) == read_container(FILE)
    assert read_container(memoryview(FILE)) == read_container(FILE)


def test_header_pack_unpack_round_trip_with_unicode_strings():
    h = Header(0, 1, 1, 0, 63, 8, 3, 65535, b"\xff" * 8, "modèle-ü", "", "")
    assert unpack_header(pack_header(h)) == h


def test_chunks_record_offsets_and_crcs():
    for chunk in read_container(FILE).chunks:
        assert FILE[chunk.offset + 4 : chunk.offset + 8] == chunk.type
        assert chunk.crc == zlib.crc32(chunk.type + chunk.data)
        assert FILE[chunk.end - 4 : chunk.end] == struct.pack("<I", chunk.crc)


def test_iter_chunks_mirrors_frame_chunk():
    body = frame_chunk(b"abcd", b"xyz") + frame_chunk(END, b"")
    chunks = list(iter_chunks(memoryview(body), 0))
    assert [(c.type, c.data, c.offset) for c in chunks] == [(b"abcd", b"xyz", 0), (END, b"", 15)]


def test_a_file_reads_the_same_chunks_as_memory_and_errors_name_what_the_chunk_holds():
    """One chunk reader for both: images parse memory, videos a seekable file (`FileBytes`)."""
    body = frame_chunk(b"abcd", b"xyz") + frame_chunk(END, b"")
    on_disk = FileBytes(io.BytesIO(body))
    assert len(on_disk) == len(body)
    assert [read_chunk(on_disk, o) for o in (0, 15)] == [read_chunk(memoryview(body), o) for o in (0, 15)]
    bad = bytearray(body)
    bad[9] ^= 0x01  # inside the data of the first chunk
    for source in (memoryview(bytes(bad)), FileBytes(io.BytesIO(bytes(bad)))):
        with pytest.raises(FormatError, match=r"CRC mismatch in chunk abcd at offset 0 \(frame 7\)"):
            read_chunk(source, 0, what="frame 7")
    with pytest.raises(FormatError, match=r"too few for a chunk header \(the frame index\)"):
        read_chunk(on_disk, len(body) - 3, what="the frame index")


def test_describe_is_json_and_lists_the_chunk_table():
    d = describe(read_container(FILE))
    assert json.loads(json.dumps(d)) == d
    assert d["writer_version"] == 1 and d["min_reader_version"] == 1 and d["size"] == len(FILE)
    assert d["header"]["width"] == 100 and d["header"]["model_id"] == "hyperprior-tiny"
    assert d["header"]["weights_sha256_prefix"] == "0123456789abcdef"
    assert d["meta"] == META_DICT
    assert [c["type"] for c in d["chunks"]] == ["HEAD", "meta", "ZSTR", "YSTR", "END "]
    assert d["chunks"][0]["offset"] == 16
    assert [c["critical"] for c in d["chunks"]] == [True, False, True, True, True]
    y = d["chunks"][3]
    assert y["length"] == len(Y_BYTES) and y["crc"] == f"{zlib.crc32(YSTR + Y_BYTES):08x}"


def test_get_and_require_name_the_missing_chunk():
    c = read_container(write_container(HEADER, [(YSTR, Y_BYTES)]))
    assert c.meta is None
    with pytest.raises(FormatError, match="ZSTR"):
        c.get(ZSTR)
    with pytest.raises(FormatError, match="ZSTR"):
        c.require(ZSTR, YSTR)
    c.require(YSTR)


def test_writer_refuses_invalid_fields():
    bad = [
        dict(width=0), dict(pad_right=64), dict(bit_depth=16), dict(channels=4), dict(kind=2),
        dict(model_id=""), dict(weights_sha256_prefix=b"short"), dict(coder="x" * 256),
        dict(quality=1 << 16), dict(model_id="a\nb"),
    ]
    for fields in bad:
        with pytest.raises(ValueError):
            pack_header(Header(**{**HEADER.__dict__, **fields}))
    for streams in ([(b"QQQQ", b"")], [(HEAD, b"")], [(ZSTR, b""), (ZSTR, b"")], [(b"ab", b"")]):
        with pytest.raises(ValueError):
            write_container(HEADER, streams)


# --- damage -------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0xFF, 0x01])
def test_every_flipped_byte_is_detected(mask):
    for i in range(len(FILE)):
        damaged = bytearray(FILE)
        damaged[i] ^= mask
        assert_detected(bytes(damaged))


def test_every_truncation_is_detected():
    for n in range(len(FILE)):
        with pytest.raises(FormatError):
            read_container(FILE[:n])


def test_trailing_bytes_after_end_are_refused():
    for extra in (b"\x00", b"x" * 20, frame_chunk(END, b"")):
        with pytest.raises(FormatError, match="after the END"):
            read_container(FILE + extra)


def test_duplicated_head_is_refused():
    pre, chunks = split_chunks(FILE)
    with pytest.raises(FormatError, match="duplicate HEAD"):
        read_container(pre + chunks[0] + b"".join(chunks))


def test_duplicated_stream_is_refused():
    pre, chunks = split_chunks(FILE)
    with pytest.raises(FormatError, match="duplicate YSTR"):
        read_container(pre + b"".join(chunks[:4]) + chunks[3] + chunks[4])


def test_head_not_first_is_refused():
    pre, chunks = split_chunks(FILE)
    with pytest.raises(FormatError, match="first chunk"):
        read_container(pre + chunks[2] + chunks[0] + chunks[1] + chunks[3] + chunks[4])


def test_end_not_last_is_refused():
    pre, chunks = split_chunks(FILE)
    with pytest.raises(FormatError):
        read_container(pre + chunks[0] + chunks[4] + chunks[2] + chunks[3])


def test_missing_end_is_refused():
    pre, chunks = split_chunks(FILE)
    with pytest.raises(FormatError, match="without an END"):
        read_container(pre + b"".join(chunks[:4]))


def test_end_with_data_is_refused():
    pre, chunks = split_chunks(FILE)
    with pytest.raises(FormatError, match="END"):
        read_container(pre + b"".join(chunks[:4]) + frame_chunk(END, b"x"))


def test_head_with_trailing_or_missing_bytes_is_refused():
    payload = pack_header(HEADER)
    for bad in (payload + b"\x00", payload[:-1], payload[:10], b""):
        with pytest.raises(FormatError, match="HEAD"):
            unpack_header(bad)


@pytest.mark.parametrize(
    "offset, value, message",
    [
        (0, b"\x07", "kind"),
        (1, b"\x00\x00\x00\x00", "size"),  # width 0
        (5, b"\x00\x00\x00\x00", "size"),  # height 0
        (9, b"\x40\x00", "padding"),  # pad_right 64
        (11, b"\xff\xff", "padding"),  # pad_bottom 65535
        (13, b"\x10", "bit depth"),
        (14, b"\x04", "channels"),
        (26, b"\xff", "UTF-8"),  # first byte of model_id
        (26, b"\x1b", "control"),  # ESC in model_id
        (25, b"\xff", "model_id"),  # model_id length past the payload
    ],
)
def test_head_field_out_of_range_is_refused(offset, value, message):
    bad = bytearray(pack_header(HEADER))
    bad[offset : offset + len(value)] = value
    with pytest.raises(FormatError, match=message):
        unpack_header(bytes(bad))


def test_head_with_empty_model_id_is_refused():
    payload = pack_header(HEADER)
    empty_id = payload[:25] + b"\x00" + payload[26 + len(HEADER.model_id) :]
    with pytest.raises(FormatError, match="empty model_id"):
        unpack_header(empty_id)


# --- versions and unknown chunks ----------------------------------------------------------


def test_unknown_ancillary_chunk_is_skipped_and_kept():
    pre, chunks = split_chunks(FILE)
    extra = frame_chunk(b"tEXt", b"hello")
    c = read_container(pre + chunks[0] + extra + b"".join(chunks[1:]))
    assert c.header == HEADER and c.get(YSTR) == Y_BYTES
    assert c.get(b"tEXt") == b"hello"
    assert not c.chunks[1].critical


def test_unknown_critical_chunk_is_refused():
    pre, chunks = split_chunks(FILE)
    data = pre + chunks[0] + frame_chunk(b"FRMX", b"1") + b"".join(chunks[1:])
    with pytest.raises(UnsupportedError, match="unknown critical chunk FRMX") as e:
        read_container(data)
    assert not isinstance(e.value, LimitError)


def test_newer_min_reader_version_is_refused_naming_both_versions():
    data = preamble(FORMAT_VERSION + 2, FORMAT_VERSION + 1) + FILE[16:]
    with pytest.raises(UnsupportedError, match=rf"version {FORMAT_VERSION + 1} or newer.*format version {FORMAT_VERSION + 2}"):
        read_container(data)


def test_newer_writer_readable_by_old_readers_is_accepted():
    c = read_container(preamble(7, 1) + FILE[16:])
    assert c.writer_version == 7 and c.header == HEADER


def test_inconsistent_versions_are_corrupt():
    for writer, min_reader in ((1, 0), (0, 1), (0, 0)):
        with pytest.raises(FormatError, match="versions"):
            read_container(preamble(writer, min_reader) + FILE[16:])


def test_video_kind_is_unsupported():
    payload = bytearray(pack_header(HEADER))
    payload[0] = 1
    data = preamble(1, 1) + frame_chunk(HEAD, bytes(payload)) + frame_chunk(END, b"")
    with pytest.raises(UnsupportedError, match="video"):
        read_container(data)


def test_invalid_meta_is_ignored_not_fatal():
    for junk in (b"\xff\xfe", b"[1, 2]", b"{", b"[" * 100_000):
        data = write_container(HEADER, STREAMS)
        pre, chunks = split_chunks(data)
        c = read_container(pre + chunks[0] + frame_chunk(META, junk) + b"".join(chunks[1:]))
        assert c.meta is None and c.get(YSTR) == Y_BYTES


# --- limits -------------------------------------------------------------------------------


def test_huge_length_field_is_refused_before_allocation():
    pre, chunks = split_chunks(FILE)
    huge = struct.pack("<I", 0xFFFFFFF0) + YSTR
    with pytest.raises(FormatError, match="declares 4294967280"):
        read_container(pre + chunks[0] + huge + b"\x00" * 100)


def test_chunk_over_max_chunk_bytes_is_a_limit_error():
    with pytest.raises(LimitError, match=r"max_chunk_bytes.*--max-chunk-bytes"):
        read_container(FILE, Limits(max_chunk_bytes=100))
    assert read_container(FILE, Limits(max_chunk_bytes=112)).header == HEADER


def test_image_over_max_pixels_is_a_limit_error_naming_the_flag():
    big = Header(**{**HEADER.__dict__, "width": 20000, "height": 20000})
    data = write_container(big, STREAMS)
    with pytest.raises(LimitError, match=r"400000000.*268435456.*--max-pixels"):
        read_container(data)
    assert read_container(data, Limits(max_pixels=20000 * 20000)).header == big


def test_image_over_max_dimension_is_a_limit_error():
    wide = Header(**{**HEADER.__dict__, "width": 70000, "height": 1})
    with pytest.raises(LimitError, match="--max-dimension"):
        read_container(write_container(wide, STREAMS))


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        Limits(max_pixels=0)


# --- not a bitstream ----------------------------------------------------------------------


def test_png_input_says_it_looks_like_an_image():
    png = b"\x89PNG\r\n\x1a\n" + frame_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    with pytest.raises(FormatError, match=r"not a codec bitstream.*PNG image"):
        read_container(png)


def test_jpeg_input_says_it_looks_like_an_image():
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    with pytest.raises(FormatError, match=r"not a codec bitstream.*JPEG image"):
        read_container(jpeg)


def test_text_mode_damage_is_diagnosed():
    with pytest.raises(FormatError, match="text mode"):
        read_container(FILE.replace(b"\r\n", b"\n", 1))
    with pytest.raises(FormatError, match="7-bit"):
        read_container(bytes([FILE[0] & 0x7F]) + FILE[1:])


def test_empty_and_non_bytes_inputs():
    with pytest.raises(FormatError, match="empty"):
        read_container(b"")
    with pytest.raises(TypeError):
        read_container("not bytes")  # type: ignore[arg-type]


# --- random mutations ---------------------------------------------------------------------

_mutation = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 10_000)),
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("duplicate"), st.integers(0, 10), st.integers(0, 10)),
    st.tuples(st.just("delete"), st.integers(0, 10)),
    st.tuples(st.just("swap"), st.integers(0, 10), st.integers(0, 10)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=16)),
)


def _mutate(data: bytes, ops: list[tuple]) -> bytes:
    pre, chunks = split_chunks(data)
    for op in ops:  # chunk-level ops first, on the chunk list of the valid file
        kind = op[0]
        if kind == "duplicate" and chunks:
            chunks.insert(op[2] % (len(chunks) + 1), chunks[op[1] % len(chunks)])
        elif kind == "delete" and chunks:
            del chunks[op[1] % len(chunks)]
        elif kind == "swap" and chunks:
            i, j = op[1] % len(chunks), op[2] % len(chunks)
            chunks[i], chunks[j] = chunks[j], chunks[i]
    out = bytearray(pre + b"".join(chunks))
    for op in ops:
        kind = op[0]
        if kind == "truncate":
            del out[op[1] % (len(out) + 1) :]
        elif kind == "flip" and out:
            out[op[1] % len(out)] ^= op[2]
        elif kind == "insert":
            pos = op[1] % (len(out) + 1)
            out[pos:pos] = op[2]
    return bytes(out)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_mutation, min_size=1, max_size=3))
def test_random_mutations_raise_codec_errors_or_read_consistently(ops):
    mutated = _mutate(FILE, ops)
    try:
        c = read_container(mutated)
    except (FormatError, UnsupportedError):
        return
    except CodecError as e:  # pragma: no cover - reported as a failure below
        pytest.fail(f"unexpected CodecError subclass {type(e).__name__}: {e}")
    # Whatever survives is a valid file: the original header, original stream data,
    # and a container that a writer given the same fields reproduces.
    assert isinstance(c, Container)
    assert c.header == HEADER
    original = dict(STREAMS)
    for chunk_type, data in c.streams:
        assert original[chunk_type] == data
    again = read_container(write_container(c.header, c.streams, c.meta))
    assert (again.header, again.streams, again.meta) == (c.header, c.streams, c.meta)


def test_deleting_meta_or_swapping_streams_still_reads():
    pre, chunks = split_chunks(FILE)
    no_meta = read_container(pre + chunks[0] + b"".join(chunks[2:]))
    assert no_meta.meta is None and no_meta.streams == read_container(FILE).streams
    swapped = read_container(pre + chunks[0] + chunks[1] + chunks[3] + chunks[2] + chunks[4])
    assert swapped.get(ZSTR) == Z_BYTES and swapped.get(YSTR) == Y_BYTES


def test_spec_example_is_a_valid_file():
    """The hex dump in docs/FORMAT.md section 12 reads back as the fields it describes."""
    spec = (ROOT / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    example = spec[spec.index("## 12. Example") :]
    rows = re.findall(r"^([0-9a-f]{8})  ((?:[0-9a-f]{2} )*[0-9a-f]{2})", example, flags=re.M)
    data = b"".join(bytes.fromhex(hexes) for _, hexes in rows)
    assert [int(off, 16) for off, _ in rows] == list(range(0, len(data), 16))
    c = read_container(data)
    assert c.header == Header(0, 100, 50, 28, 14, 8, 3, 0, bytes(range(8)), "demo", "constriction", "0.5.0")
    assert c.streams == ((ZSTR, b"\x01\x02"), (YSTR, b"\xaa\xbb\xcc\xdd"))
    assert write_container(c.header, c.streams) == data


# --- isolation ----------------------------------------------------------------------------


def test_container_imports_only_the_standard_library():
    # A stand-in `codec` package (so codec/__init__.py, which may import torch, is not run)
    # isolates what codec.container itself pulls in.
    code = f"""
import sys, types
before = set(sys.modules)
pkg = types.ModuleType("codec")
pkg.__path__ = [{str(ROOT / "codec")!r}]
sys.modules["codec"] = pkg
import codec.container
new = set(sys.modules) - before
allowed = set(sys.stdlib_module_names) | {{"codec"}}
outside = sorted(m for m in new if m.split(".")[0] not in allowed)
ours = sorted(m for m in new if m.split(".")[0] == "codec"
              and not (m in ("codec", "codec.errors") or m.startswith("codec.container")))
forbidden = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "numpy", "constriction"))
print(outside, ours, forbidden)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] [] []"

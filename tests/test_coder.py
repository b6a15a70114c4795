"""Behaviour of the entropy coder: exact round trips, escapes, rate, determinism, golden bytes,
corrupt input handling, and isolation from torch."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec import coder
from codec.errors import FormatError

ROOT = Path(__file__).resolve().parents[1]
TABLE = np.exp(np.linspace(math.log(0.11), math.log(256.0), 64))
INT32_EXTREMES = [2**31 - 1, -(2**31), -(2**31) + 1, 100_000, -100_000]

GOLDEN_GAUSSIAN = dict(symbols=[0, 1, -2, 3, 40, -1000, 2**31 - 1], scale_index=[0, 1, 2, 2, 1, 0, 2],
                       scale_table=[0.5, 1.0, 4.0], radius=8)
GOLDEN_GAUSSIAN_HEX = "f7a1b3afff391e88a1e29142acfb8462"
GOLDEN_CATEGORICAL = dict(symbols=[[0, 1, 2, -9], [3, 4, 5, 99]],
                          pmf=[[0.1, 0.2, 0.4, 0.2, 0.1], [0.3, 0.1, 0.2, 0.1, 0.3]], offset=-1)
GOLDEN_CATEGORICAL_HEX = "30ddb3378489728b"


def _gaussian_case(rng, n, radius=255, index_range=(0, 64)):
    idx = rng.integers(*index_range, size=n)
    s = np.round(rng.normal(0.0, TABLE[idx])).astype(np.int64)
    return s, idx


def _std_normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.vectorize(math.erfc)(-x / math.sqrt(2.0))


def _valid_pmf(rng, channels, size):
    pmf = rng.random((channels, size)) + 1e-3
    return pmf / pmf.sum(axis=1, keepdims=True)


# --- Gaussian stream -------------------------------------------------------------------------


@pytest.mark.parametrize("radius", [255, 8, 1])
def test_gaussian_round_trip_is_exact_including_far_escapes(radius):
    rng = np.random.default_rng(radius)
    s, idx = _gaussian_case(rng, 3000)
    s[:len(INT32_EXTREMES)] = INT32_EXTREMES
    s[5:9] = [radius, -radius, radius - 1, radius + 1]
    idx = idx.reshape(30, 100)
    s = s.reshape(30, 100)
    data = coder.encode_gaussian(s, idx, TABLE, radius=radius)
    out = coder.decode_gaussian(data, idx, TABLE, radius=radius)
    assert out.dtype == np.int32 and out.shape == s.shape
    np.testing.assert_array_equal(out, s)


def test_gaussian_with_small_radius_escapes_most_symbols_and_still_round_trips():
    rng = np.random.default_rng(7)
    s, idx = _gaussian_case(rng, 2000, index_range=(40, 64))  # std ~ 10..256
    assert np.mean(np.abs(s) >= 8) > 0.5
    data = coder.encode_gaussian(s, idx, TABLE, radius=8)
    np.testing.assert_array_equal(coder.decode_gaussian(data, idx, TABLE, radius=8), s)


def test_gaussian_escape_cost_grows_with_the_excess():
    idx = np.zeros(200, dtype=np.int64)
    table = np.array([1.0])
    near = coder.encode_gaussian(np.full(200, 9), idx, table, radius=8)
    far = coder.encode_gaussian(np.full(200, 2**31 - 1), idx, table, radius=8)
    assert len(near) < len(far)


def test_gaussian_empty_input_round_trips_to_empty_bytes():
    idx = np.zeros((0, 3), dtype=np.int64)
    data = coder.encode_gaussian(np.zeros((0, 3), dtype=np.int32), idx, TABLE)
    assert data == b""
    assert coder.decode_gaussian(data, idx, TABLE).shape == (0, 3)


def test_gaussian_rate_is_within_five_percent_of_the_ideal_entropy():
    rng = np.random.default_rng(3)
    n = 20_000
    idx = rng.integers(10, 50, size=n)  # std ~ 0.4 .. 30
    std = TABLE[idx]
    s = np.round(rng.normal(0.0, std)).astype(np.int64)
    p = _std_normal_cdf((s + 0.5) / std) - _std_normal_cdf((s - 0.5) / std)
    ideal_bits = float(-np.log2(p).sum())
    actual_bits = 8 * len(coder.encode_gaussian(s, idx, TABLE))
    assert ideal_bits <= actual_bits * 1.001
    assert actual_bits <= 1.05 * ideal_bits


@pytest.mark.parametrize("bad", [
    dict(symbols=np.zeros(4, dtype=np.int32), scale_index=np.zeros(5, dtype=np.int64)),
    dict(symbols=np.zeros(4), scale_index=np.zeros(4, dtype=np.int64)),
    dict(symbols=np.array([2**31]), scale_index=np.zeros(1, dtype=np.int64)),
    dict(symbols=np.zeros(2, dtype=np.int32), scale_index=np.array([0, 64])),
    dict(symbols=np.zeros(2, dtype=np.int32), scale_index=np.array([0, -1])),
    dict(symbols=np.zeros(2, dtype=np.int32), scale_index=np.zeros(2, dtype=np.int64), radius=0),
    dict(symbols=np.zeros(2, dtype=np.int32), scale_index=np.zeros(2, dtype=np.int64), scale_table=np.array([0.0])),
    dict(symbols=np.zeros(2, dtype=np.int32), scale_index=np.zeros(2, dtype=np.int64), scale_table=np.array([np.nan])),
])
def test_gaussian_programmer_errors_raise_value_error(bad):
    args = dict(scale_table=TABLE, radius=255) | bad
    with pytest.raises(ValueError):
        coder.encode_gaussian(**args)


# --- Categorical stream ----------------------------------------------------------------------


def test_categorical_round_trip_with_escapes_on_both_sides():
    rng = np.random.default_rng(11)
    channels, size, n, offset = 6, 9, 400, -4
    pmf = _valid_pmf(rng, channels, size)
    v = rng.integers(offset - 30, offset + size + 30, size=(channels, n))
    v[0, :4] = [offset, offset + size - 1, offset - 1, offset + size]  # the escape bins themselves
    v[1, :3] = [-(2**31) + 1000, 2**31 - 1 - 1000, offset + 1]
    data = coder.encode_categorical(v, pmf, offset)
    out = coder.decode_categorical(data, pmf, offset, n)
    assert out.dtype == np.int32 and out.shape == (channels, n)
    np.testing.assert_array_equal(out, v)


def test_categorical_accepts_per_channel_offsets():
    rng = np.random.default_rng(12)
    pmf = _valid_pmf(rng, 3, 5)
    offsets = np.array([-2, 0, 7], dtype=np.int32)
    v = rng.integers(-10, 20, size=(3, 50))
    data = coder.encode_categorical(v, pmf, offsets)
    np.testing.assert_array_equal(coder.decode_categorical(data, pmf, offsets, 50), v)


def test_categorical_inner_values_cost_about_their_table_entropy():
    rng = np.random.default_rng(13)
    pmf = np.array([[1e-6, 0.5, 0.25, 0.125, 0.125 - 2e-6, 1e-6]])
    k = rng.choice(6, size=(1, 4000), p=pmf[0])
    k = np.clip(k, 1, 4)
    ideal = float(-np.log2(pmf[0][k]).sum())
    bits = 8 * len(coder.encode_categorical(k - 3, pmf, -3))
    assert bits <= 1.02 * ideal + 64


def test_categorical_value_too_far_from_table_raises_value_error():
    pmf = np.full((1, 4), 0.25)
    with pytest.raises(ValueError):
        coder.encode_categorical(np.array([[2**31 - 1]]), pmf, -1000)


@pytest.mark.parametrize("bad", [
    dict(symbols=np.zeros((3, 4), dtype=np.int32)),  # wrong channel count
    dict(symbols=np.zeros(4, dtype=np.int32)),
    dict(pmf=np.ones((2, 1))),
    dict(pmf=np.array([[0.5, -0.1, 0.6], [1, 1, 1]])),
    dict(pmf=np.zeros((2, 3))),
    dict(offset=1.5),
    dict(offset=np.array([1, 2, 3])),
])
def test_categorical_programmer_errors_raise_value_error(bad):
    args = dict(symbols=np.zeros((2, 4), dtype=np.int32), pmf=np.ones((2, 3)) / 3, offset=0) | bad
    with pytest.raises(ValueError):
        coder.encode_categorical(**args)


# --- Format stability ------------------------------------------------------------------------


def test_encoding_is_deterministic():
    rng = np.random.default_rng(5)
    s, idx = _gaussian_case(rng, 500)
    assert coder.encode_gaussian(s, idx, TABLE, 8) == coder.encode_gaussian(s.copy(), idx.copy(), TABLE.copy(), 8)
    pmf = _valid_pmf(rng, 2, 7)
    v = rng.integers(-10, 10, size=(2, 100))
    assert coder.encode_categorical(v, pmf, -3) == coder.encode_categorical(v.copy(), pmf.copy(), -3)


def test_golden_bytes_are_unchanged():
    g = GOLDEN_GAUSSIAN
    data = coder.encode_gaussian(np.array(g["symbols"]), np.array(g["scale_index"]),
                                 np.array(g["scale_table"]), g["radius"])
    assert data.hex() == GOLDEN_GAUSSIAN_HEX
    np.testing.assert_array_equal(
        coder.decode_gaussian(bytes.fromhex(GOLDEN_GAUSSIAN_HEX), np.array(g["scale_index"]),
                              np.array(g["scale_table"]), g["radius"]), g["symbols"])
    c = GOLDEN_CATEGORICAL
    data = coder.encode_categorical(np.array(c["symbols"]), np.array(c["pmf"]), c["offset"])
    assert data.hex() == GOLDEN_CATEGORICAL_HEX
    np.testing.assert_array_equal(
        coder.decode_categorical(bytes.fromhex(GOLDEN_CATEGORICAL_HEX), np.array(c["pmf"]), c["offset"], 4),
        c["symbols"])


def test_coder_identity_is_reported():
    assert coder.coder_name() == "constriction"
    major, minor = (int(x) for x in coder.coder_version().split(".")[:2])
    assert (0, 4) <= (major, minor) < (0, 6)
    assert coder.SUPPORTED == ">=0.4,<0.6"


# --- Corrupt and truncated input -------------------------------------------------------------

_CORRUPT_IDX = np.random.default_rng(21).integers(0, 64, size=(4, 16))
_CORRUPT_SYMBOLS = np.round(np.random.default_rng(22).normal(0.0, TABLE[_CORRUPT_IDX])).astype(np.int64)
_CORRUPT_SYMBOLS[0, :3] = [300, -70000, 2**31 - 1]
_GOOD_GAUSSIAN = coder.encode_gaussian(_CORRUPT_SYMBOLS, _CORRUPT_IDX, TABLE, radius=8)
_CAT_PMF = _valid_pmf(np.random.default_rng(23), 3, 6)
_CAT_VALUES = np.random.default_rng(24).integers(-12, 12, size=(3, 20))
_GOOD_CATEGORICAL = coder.encode_categorical(_CAT_VALUES, _CAT_PMF, -2)


def _decode_both_ways(data: bytes) -> None:
    """Decoding damaged bytes may only raise FormatError or return an int32 array of the right shape."""
    try:
        out = coder.decode_gaussian(data, _CORRUPT_IDX, TABLE, radius=8)
        assert out.shape == _CORRUPT_IDX.shape and out.dtype == np.int32
    except FormatError:
        pass
    try:
        out = coder.decode_categorical(data, _CAT_PMF, -2, 20)
        assert out.shape == (3, 20) and out.dtype == np.int32
    except FormatError:
        pass


_FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_format_error(data):
    _decode_both_ways(data)


@_FUZZ
@given(st.integers(0, 10_000), st.integers(0, 255), st.integers(0, 1))
def test_truncated_or_flipped_streams_only_raise_format_error(cut, xor, which):
    good = _GOOD_GAUSSIAN if which == 0 else _GOOD_CATEGORICAL
    _decode_both_ways(good[:cut % (len(good) + 1)])
    if xor:
        damaged = bytearray(good)
        damaged[cut % len(good)] ^= xor
        _decode_both_ways(bytes(damaged))


def test_stream_length_not_a_multiple_of_four_is_format_error():
    with pytest.raises(FormatError, match="corrupt or truncated"):
        coder.decode_gaussian(_GOOD_GAUSSIAN[:-1], _CORRUPT_IDX, TABLE, radius=8)
    with pytest.raises(FormatError, match="corrupt or truncated"):
        coder.decode_categorical(_GOOD_CATEGORICAL + b"\0", _CAT_PMF, -2, 20)


def test_trailing_words_after_a_valid_stream_are_format_error():
    with pytest.raises(FormatError, match="corrupt or truncated"):
        coder.decode_gaussian(_GOOD_GAUSSIAN + _GOOD_GAUSSIAN, _CORRUPT_IDX, TABLE, radius=8)
    with pytest.raises(FormatError, match="corrupt or truncated"):
        coder.decode_gaussian(b"\x01\0\0\0", np.zeros(0, dtype=np.int64), TABLE)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 300), st.integers(1, 20))
def test_valid_streams_are_never_flagged(seed, n, radius):
    rng = np.random.default_rng(seed)
    s, idx = _gaussian_case(rng, n)
    data = coder.encode_gaussian(s, idx, TABLE, radius)
    np.testing.assert_array_equal(coder.decode_gaussian(data, idx, TABLE, radius), s)
    pmf = _valid_pmf(rng, 2, radius + 1)
    v = rng.integers(-radius * 2, radius * 2, size=(2, n))
    data = coder.encode_categorical(v, pmf, -radius // 2)
    np.testing.assert_array_equal(coder.decode_categorical(data, pmf, -radius // 2, n), v)


# --- Isolation -------------------------------------------------------------------------------


def test_importing_the_coder_does_not_import_torch():
    code = "import sys, codec.coder; assert 'torch' not in sys.modules, 'torch imported'"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

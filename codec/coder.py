"""Entropy coder: integer symbols + frozen model parameters <-> bytes.

The only module of codec that imports constriction (and it imports neither torch nor anything
above it). Both streams are constriction queue range coders (FIFO); ``bytes`` are the compressed
uint32 words, little-endian. Every function validates its arguments (``ValueError`` for a
programmer error) and every decode turns a coder failure into ``FormatError`` (exit 3).

Stream layouts (each part one vectorised coder call, in this order)::

    Gaussian     s_clamped[0..n)   QuantizedGaussian(-R, R), mean 0, std = scale_table[scale_index]
                 escape excesses   for each |s| >= R, in order (see below)
    Laplace      per batch: s_clamped QuantizedLaplace(-R, R), mean[i], scale_table[scale_index[i]];
                 then that batch's escape excesses (batches follow each other in one coder)
    Categorical  k[c, 0..n)        Categorical(pmf[c], perfect=False), channel by channel, k = v - offset
                 escape excesses   for each k <= 0 or k >= L-1, channel-major order

Escapes: the two extreme symbols (+-R, or table indexes 0 and L-1) mean "at or beyond"; the excess
e >= 0 beyond that extreme follows the main symbols in an Elias-gamma-like code over u = e + 1:
the exponent m = floor(log2 u) (0..31) with Uniform(32) for every escape, then the m bits of u
below its leading one, split into a high part (m - 16 bits, when m > 16) and a low part
(min(m, 16) bits), each with a Uniform(2^bits) family. An escape costs 5 + m bits, so values just
beyond the range are cheap and every int32 value still round-trips exactly.

Decoding checks ``RangeDecoder.maybe_exhausted()`` at the end: constriction guarantees it is True
once all the data of a valid stream is consumed, so False means trailing words (a corrupt stream); a stream with no symbols is empty bytes.
A truncated stream may still decode to garbage of the right shape; the container's CRC catches it.
"""

from __future__ import annotations

import importlib.metadata

import constriction
import numpy as np

from codec.errors import FormatError

SUPPORTED = ">=0.4,<0.6"
"""constriction versions whose bitstream this format relies on (queue range coder, default preset:
32-bit words, 24-bit probabilities; ``Categorical(perfect=False)``, ``QuantizedGaussian``, ``Uniform``)."""

DEFAULT_RADIUS = 255
MAX_RADIUS = 1 << 16
MAX_ALPHABET = 1 << 16
EXCESS_MAX = 2**31 - 1
"""Largest escape excess a stream may carry; beyond it encode raises ValueError."""

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_EXPONENT_SIZE = 32  # u = excess + 1 <= 2^32 - 1 always has floor(log2 u) < 32
_CHUNK_BITS = 16

_model = constriction.stream.model
_queue = constriction.stream.queue


def coder_name() -> str:
    """Name of the entropy coder, as recorded in the container header."""
    return "constriction"


def coder_version() -> str:
    """Installed constriction version (e.g. ``"0.5.0"``), as recorded in the container header."""
    return importlib.metadata.version("constriction")


# ---------------------------------------------------------------------------------------------
# Gaussian stream (main latents)


def encode_gaussian(symbols: np.ndarray, scale_index: np.ndarray, scale_table: np.ndarray,
                    radius: int = DEFAULT_RADIUS) -> bytes:
    """Codes mean-removed integer residuals under zero-mean quantized Gaussians.

    Args:
        symbols: integer residuals, any shape, each within int32.
        scale_index: integer array of the same shape, indexes into ``scale_table``.
        scale_table: (S,) float64 standard deviations, finite and > 0; identical on both sides.
        radius: the Gaussian covers [-radius, radius]; |s| >= radius is escape-coded.

    Returns:
        The stream as little-endian uint32 words.
    """
    std = _gaussian_std(scale_index, scale_table, radius)
    s = _int_array(symbols, "symbols")
    if s.shape != np.shape(scale_index):
        raise ValueError(f"symbols shape {s.shape} differs from scale_index shape {np.shape(scale_index)}")
    _check_range(s, _INT32_MIN, _INT32_MAX, "symbols (int32 range)")
    s = s.reshape(-1).astype(np.int64)
    escaped = np.abs(s) >= radius
    encoder = _queue.RangeEncoder()
    if s.size:
        clamped = np.clip(s, -radius, radius).astype(np.int32)
        encoder.encode(clamped, _model.QuantizedGaussian(-radius, radius), np.zeros_like(std), std)
    _encode_excess(encoder, np.abs(s[escaped]) - radius)
    return _words_to_bytes(encoder.get_compressed())


def decode_gaussian(data: bytes, scale_index: np.ndarray, scale_table: np.ndarray,
                    radius: int = DEFAULT_RADIUS) -> np.ndarray:
    """Mirror of `encode_gaussian`: int32 array of ``scale_index``'s shape.

    Raises:
        FormatError: the stream is corrupt or truncated.
    """
    std = _gaussian_std(scale_index, scale_table, radius)
    shape = np.shape(scale_index)
    reader = _Reader(data, "Gaussian")
    s = np.zeros(std.size, dtype=np.int64)
    if s.size:
        s = reader.decode(_model.QuantizedGaussian(-radius, radius), np.zeros_like(std), std).astype(np.int64)
        if s.shape != std.shape or np.any(np.abs(s) > radius):
            raise FormatError("Gaussian stream is corrupt or truncated (symbols outside the model)")
    escaped = np.abs(s) >= radius
    excess = _decode_excess(reader, int(np.count_nonzero(escaped)))
    reader.finish()
    s[escaped] = np.sign(s[escaped]) * (radius + excess)
    if s.size and (s.min() < _INT32_MIN or s.max() > _INT32_MAX):
        raise FormatError("Gaussian stream is corrupt or truncated (escaped value beyond int32)")
    return s.astype(np.int32).reshape(shape)


class _BatchEncoder:
    """One range coder written batch by batch: each batch's clamped symbols under `model` with
    per-symbol parameters, then that batch's escape excesses (|s| >= radius)."""

    def __init__(self, scale_table: np.ndarray, radius: int = DEFAULT_RADIUS):
        _check_radius(radius)
        self.scale_table, self.radius = _checked_table(scale_table), radius
        self._encoder = _queue.RangeEncoder()
        self._models: dict = {}

    def _encode(self, symbols, model, mean: np.ndarray, scale: np.ndarray) -> None:
        s = _int_array(symbols, "symbols")
        if s.size != scale.size:
            raise ValueError(f"{s.size} symbols but {scale.size} scale indexes")
        _check_range(s, _INT32_MIN, _INT32_MAX, "symbols (int32 range)")
        s = s.reshape(-1).astype(np.int64)
        r = self.radius
        if s.size:
            self._encoder.encode(np.clip(s, -r, r).astype(np.int32), _family(self._models, model, r), mean, scale)
        _encode_excess(self._encoder, np.abs(s[np.abs(s) >= r]) - r)

    def finish(self) -> bytes:
        return _words_to_bytes(self._encoder.get_compressed())


class _BatchDecoder:
    """Mirror of `_BatchEncoder` (FormatError on a corrupt or truncated stream)."""

    def __init__(self, data: bytes, scale_table: np.ndarray, radius: int, what: str):
        _check_radius(radius)
        self.scale_table, self.radius = _checked_table(scale_table), radius
        self._reader = _Reader(data, what)
        self._models: dict = {}

    def _decode(self, model, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """(n,) int32 symbols; the common case (no escapes, the model's range) costs a few
        whole-array passes: the auto-regressive decoders call this thousands of times a file."""
        r, reader = self.radius, self._reader
        if not scale.size:
            return np.zeros(0, np.int32)
        s = reader.decode(_family(self._models, model, r), mean, scale)
        if s.shape != scale.shape:
            raise FormatError(f"{reader.what} stream is corrupt or truncated (symbols outside the model)")
        lo, hi = int(s.min()), int(s.max())
        if lo < -r or hi > r:
            raise FormatError(f"{reader.what} stream is corrupt or truncated (symbols outside the model)")
        if lo > -r and hi < r:
            return s.astype(np.int32, copy=False)
        s = s.astype(np.int64)
        escaped = np.abs(s) >= r
        s[escaped] = np.sign(s[escaped]) * (r + _decode_excess(reader, int(np.count_nonzero(escaped))))
        if s.min() < _INT32_MIN or s.max() > _INT32_MAX:
            raise FormatError(f"{reader.what} stream is corrupt or truncated (escaped value beyond int32)")
        return s.astype(np.int32)

    def finish(self) -> None:
        self._reader.finish()


def _family(cache: dict, model, radius: int):
    """The constriction model family `model(-radius, radius)`, made once per coder."""
    if model not in cache:
        cache[model] = model(-radius, radius)
    return cache[model]


class GaussianEncoder(_BatchEncoder):
    """One Gaussian stream written in batches (for models whose parameters of batch k depend on the
    decoded symbols of batches < k, such as the VCT decoder's token steps). Each batch is laid out as
    in `encode_gaussian` (clamped symbols, then its escape excesses), batch after batch, in one range
    coder, so the stream pays its final-word overhead once. `GaussianDecoder` reads it back batch by
    batch with the same parameters."""

    def encode(self, symbols: np.ndarray, scale_index: np.ndarray) -> None:
        std = _lookup(self.scale_table, scale_index)
        if np.shape(symbols) != np.shape(scale_index):
            raise ValueError(f"symbols shape {np.shape(symbols)} differs from scale_index shape {np.shape(scale_index)}")
        self._encode(symbols, _model.QuantizedGaussian, np.zeros_like(std), std)


class GaussianDecoder(_BatchDecoder):
    """Mirror of `GaussianEncoder`: `decode(scale_index)` per batch, then `finish()`.

    Raises:
        FormatError: the stream is corrupt or truncated.
    """

    def __init__(self, data: bytes, scale_table: np.ndarray, radius: int = DEFAULT_RADIUS, what: str = "Gaussian"):
        super().__init__(data, scale_table, radius, what)

    def decode(self, scale_index: np.ndarray) -> np.ndarray:
        std = _lookup(self.scale_table, scale_index)
        return self._decode(_model.QuantizedGaussian, np.zeros_like(std), std).reshape(np.shape(scale_index))


class LaplaceEncoder(_BatchEncoder):
    """A stream of integers under quantized Laplace distributions with per-symbol means (for
    auto-regressive models that code in batches, such as the overfitted family's wavefronts).
    Each batch: the symbols clamped to [-radius, radius] under QuantizedLaplace(-radius, radius,
    mean, scale_table[scale_index]), then the escape excesses of |s| >= radius (as in the Gaussian
    stream). Means must be finite and within the range; both sides pass identical float64 values
    (the callers compute them exactly and snap them to a grid)."""

    def encode(self, symbols: np.ndarray, mean: np.ndarray, scale_index: np.ndarray) -> None:
        scale = _lookup(self.scale_table, scale_index)
        self._encode(symbols, _model.QuantizedLaplace, _means(mean, scale.size, self.radius), scale)


class LaplaceDecoder(_BatchDecoder):
    """Mirror of `LaplaceEncoder`: `decode(mean, scale_index)` per batch (flat int32), then `finish()`.

    Raises:
        FormatError: the stream is corrupt or truncated.
    """

    def __init__(self, data: bytes, scale_table: np.ndarray, radius: int = DEFAULT_RADIUS, what: str = "Laplace"):
        super().__init__(data, scale_table, radius, what)

    def decode(self, mean: np.ndarray, scale_index: np.ndarray) -> np.ndarray:
        scale = _lookup(self.scale_table, scale_index)
        return self._decode(_model.QuantizedLaplace, _means(mean, scale.size, self.radius), scale)

    def decode_in_range(self, mean: np.ndarray, scale_index: np.ndarray) -> np.ndarray:
        """`decode` for callers whose parameters lie in range by construction (contiguous float64
        means clipped to [-radius, radius], int64 indexes clipped to the table, as the overfitted
        family's ARM computes them): the per-batch checks cost more than the coding at its
        batch sizes (about 500 symbols, a thousand batches a Kodak image)."""
        return self._decode(_model.QuantizedLaplace, mean, self.scale_table[scale_index])


def _means(mean, n: int, radius: int) -> np.ndarray:
    mu = np.ascontiguousarray(np.asarray(mean, dtype=np.float64).reshape(-1))
    if mu.size != n:
        raise ValueError(f"{mu.size} means but {n} scale indexes")
    if mu.size and (not np.all(np.isfinite(mu)) or np.abs(mu).max() > radius):
        raise ValueError(f"means must be finite and within [-{radius}, {radius}]")
    return mu


def _gaussian_std(scale_index, scale_table, radius) -> np.ndarray:
    """Validated per-symbol std, flat float64."""
    _check_radius(radius)
    return _lookup(_checked_table(scale_table), scale_index)


def _checked_table(scale_table) -> np.ndarray:
    """The scale table as float64, checked: 1-D, non-empty, finite and positive."""
    table = np.asarray(scale_table)
    if table.ndim != 1 or table.size == 0 or not np.issubdtype(table.dtype, np.floating):
        raise ValueError(f"scale_table must be a non-empty 1-D float array, got {table.dtype} {table.shape}")
    table = table.astype(np.float64)
    if not np.all(np.isfinite(table)) or np.any(table <= 0):
        raise ValueError("scale_table entries must be finite and > 0")
    return table


def _lookup(table: np.ndarray, scale_index) -> np.ndarray:
    index = _int_array(scale_index, "scale_index")
    _check_range(index, 0, table.size - 1, "scale_index (within scale_table)")
    return np.ascontiguousarray(table[index.reshape(-1)])


def _check_radius(radius) -> None:
    if isinstance(radius, (bool, np.bool_)) or not isinstance(radius, (int, np.integer)):
        raise ValueError(f"radius must be an int, got {type(radius).__name__}")
    if not 1 <= radius <= MAX_RADIUS:
        raise ValueError(f"radius must be in [1, {MAX_RADIUS}], got {radius}")


# ---------------------------------------------------------------------------------------------
# Categorical stream (side information, factorized prior with frozen tables)


def encode_categorical(symbols: np.ndarray, pmf: np.ndarray, offset: int | np.ndarray) -> bytes:
    """Codes integer values channel by channel under frozen per-channel tables.

    Value v of channel c is table index k = v - offset (offset[c] if an array); index 0 stands for
    "at or below offset" and L-1 for "at or above offset + L-1", and both carry an escape excess.

    Args:
        symbols: (C, n) integer values, channel-major.
        pmf: (C, L) float64 probabilities per channel (L >= 2), finite, >= 0, rows with positive sum.
        offset: int, or (C,) integers, the value that table index 0 stands for.

    Returns:
        The stream as little-endian uint32 words.
    """
    table = _check_pmf(pmf)
    channels, size = table.shape
    offsets = _check_offset(offset, channels)
    v = _int_array(symbols, "symbols")
    if v.ndim != 2 or v.shape[0] != channels:
        raise ValueError(f"symbols must have shape ({channels}, n), got {v.shape}")
    _check_range(v, _INT32_MIN, _INT32_MAX, "symbols (int32 range)")
    k = v.astype(np.int64) - offsets[:, None]  # (C, n)
    low, high = k <= 0, k >= size - 1
    escaped = low | high
    excess = np.where(low, -k, k - (size - 1))[escaped]
    if excess.size and excess.max() > EXCESS_MAX:
        raise ValueError(f"a symbol lies more than {EXCESS_MAX} beyond its table; cannot be coded")
    index = np.clip(k, 0, size - 1).astype(np.int32)
    encoder = _queue.RangeEncoder()
    if index.shape[1]:
        for c in range(channels):
            encoder.encode(index[c], _model.Categorical(table[c], perfect=False))
    _encode_excess(encoder, excess)
    return _words_to_bytes(encoder.get_compressed())


def decode_categorical(data: bytes, pmf: np.ndarray, offset: int | np.ndarray, n: int) -> np.ndarray:
    """Mirror of `encode_categorical`: (C, n) int32 values.

    Raises:
        FormatError: the stream is corrupt or truncated.
    """
    table = _check_pmf(pmf)
    channels, size = table.shape
    offsets = _check_offset(offset, channels)
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    n = int(n)
    reader = _Reader(data, "categorical")
    k = np.zeros((channels, n), dtype=np.int64)
    if n:
        for c in range(channels):
            row = reader.decode(_model.Categorical(table[c], perfect=False), n)
            if row.shape != (n,) or row.min() < 0 or row.max() > size - 1:
                raise FormatError("categorical stream is corrupt or truncated (symbols outside the table)")
            k[c] = row
    low, high = k == 0, k == size - 1
    escaped = low | high
    excess = _decode_excess(reader, int(np.count_nonzero(escaped)))
    reader.finish()
    k[escaped] += np.where(low[escaped], -excess, excess)
    v = k + offsets[:, None]
    if v.size and (v.min() < _INT32_MIN or v.max() > _INT32_MAX):
        raise FormatError("categorical stream is corrupt or truncated (escaped value beyond int32)")
    return v.astype(np.int32)


def _check_pmf(pmf) -> np.ndarray:
    table = np.asarray(pmf)
    if table.ndim != 2 or not np.issubdtype(table.dtype, np.floating):
        raise ValueError(f"pmf must be a 2-D float array (C, L), got {table.dtype} {table.shape}")
    if not 2 <= table.shape[1] <= MAX_ALPHABET:
        raise ValueError(f"pmf needs 2..{MAX_ALPHABET} entries per channel, got {table.shape[1]}")
    table = np.ascontiguousarray(table, dtype=np.float64)
    if not np.all(np.isfinite(table)) or np.any(table < 0) or np.any(table.sum(axis=1) <= 0):
        raise ValueError("pmf entries must be finite and >= 0, with a positive sum per channel")
    return table


def _check_offset(offset, channels: int) -> np.ndarray:
    """(C,) int64 offsets from an int or a (C,) integer array."""
    arr = np.asarray(offset)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer) or arr.ndim > 1:
        raise ValueError(f"offset must be an int or a (C,) integer array, got {offset!r}")
    _check_range(arr, _INT32_MIN, _INT32_MAX, "offset (int32 range)")
    arr = np.broadcast_to(arr.astype(np.int64), (channels,)) if arr.ndim == 0 else arr.astype(np.int64)
    if arr.shape != (channels,):
        raise ValueError(f"offset must have shape ({channels},), got {arr.shape}")
    return arr


# ---------------------------------------------------------------------------------------------
# Escape excesses (shared by both streams)


def _encode_excess(encoder, excess: np.ndarray) -> None:
    """Appends excesses e in [0, EXCESS_MAX]: exponent of u = e + 1, then its bits below the top one."""
    if excess.size == 0:
        return
    u = excess.astype(np.int64) + 1
    exponent = (np.frexp(u.astype(np.float64))[1] - 1).astype(np.int64)  # floor(log2 u), exact below 2^53
    rest = u - (np.int64(1) << exponent)
    lo_bits = np.minimum(exponent, _CHUNK_BITS)
    hi_bits = exponent - lo_bits
    encoder.encode(exponent.astype(np.int32), _model.Uniform(_EXPONENT_SIZE))
    for part, bits in ((rest >> lo_bits, hi_bits), (rest & ((np.int64(1) << lo_bits) - 1), lo_bits)):
        used = bits > 0
        if np.any(used):
            encoder.encode(part[used].astype(np.int32), _model.Uniform(),
                           (np.int64(1) << bits[used]).astype(np.int32))


def _decode_excess(reader: _Reader, count: int) -> np.ndarray:
    """Mirror of `_encode_excess`: (count,) int64 excesses."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    exponent = reader.decode(_model.Uniform(_EXPONENT_SIZE), count).astype(np.int64)
    if exponent.shape != (count,) or exponent.min() < 0 or exponent.max() >= _EXPONENT_SIZE:
        raise FormatError(f"{reader.what} stream is corrupt or truncated (bad escape exponent)")
    lo_bits = np.minimum(exponent, _CHUNK_BITS)
    hi_bits = exponent - lo_bits
    parts = []
    for bits in (hi_bits, lo_bits):
        part = np.zeros(count, dtype=np.int64)
        used = bits > 0
        if np.any(used):
            sizes = (np.int64(1) << bits[used])
            got = reader.decode(_model.Uniform(), sizes.astype(np.int32)).astype(np.int64)
            if got.shape != sizes.shape or np.any(got < 0) or np.any(got >= sizes):
                raise FormatError(f"{reader.what} stream is corrupt or truncated (bad escape bits)")
            part[used] = got
        parts.append(part)
    excess = (np.int64(1) << exponent) + (parts[0] << lo_bits) + parts[1] - 1
    if excess.max() > EXCESS_MAX:
        raise FormatError(f"{reader.what} stream is corrupt or truncated (escape beyond {EXCESS_MAX})")
    return excess


# ---------------------------------------------------------------------------------------------
# Bytes <-> words, and the decoder's error boundary


def _words_to_bytes(words: np.ndarray) -> bytes:
    return np.asarray(words, dtype=np.uint32).astype("<u4").tobytes()


class _Reader:
    """A RangeDecoder whose every failure is a FormatError naming the stream."""

    def __init__(self, data: bytes, what: str):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"data must be bytes, got {type(data).__name__}")
        raw = bytes(data)
        self.what = what
        if len(raw) % 4:
            raise FormatError(f"{what} stream is corrupt or truncated "
                              f"(length {len(raw)} is not a multiple of 4 bytes)")
        words = np.frombuffer(raw, dtype="<u4").astype(np.uint32)
        self._empty, self._decoded = words.size == 0, False
        self._decoder = self._guard(_queue.RangeDecoder, words)

    def decode(self, model, *params) -> np.ndarray:
        self._decoded = True
        return np.asarray(self._guard(self._decoder.decode, model, *params))

    def finish(self) -> None:
        """Refuses words left over after the last symbol (a valid stream has none)."""
        if not self._decoded and not self._empty:  # nothing to decode: the encoder wrote no words
            raise FormatError(f"{self.what} stream is corrupt or truncated (data where none was expected)")
        if not self._guard(self._decoder.maybe_exhausted):
            raise FormatError(f"{self.what} stream is corrupt or truncated (data left after the last symbol)")

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError):
            raise
        except BaseException as exc:  # constriction raises AssertionError, ValueError and pyo3 panics
            raise FormatError(f"{self.what} stream is corrupt or truncated ({type(exc).__name__}: {exc})") from exc


# ---------------------------------------------------------------------------------------------
# Argument checks


def _int_array(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array, got dtype {arr.dtype}")
    return arr


def _check_range(arr: np.ndarray, lo: int, hi: int, name: str) -> None:
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"{name}: values must lie in [{lo}, {hi}], got [{arr.min()}, {arr.max()}]")

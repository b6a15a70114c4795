"""Errors raised by codec, each mapped to one documented exit code by the CLI.

Exit codes (docs/USAGE.md, "Exit codes"):
    0 ok, 1 internal error, 2 usage (bad arguments, missing input, existing output),
    3 corrupt or truncated input, 4 unsupported input, 5 weights problem, 6 `codec eval --check`
    failed, 7 output not written (disk full, file too large, read-only file system, I/O error).
"""

from __future__ import annotations


class CodecError(Exception):
    """Base class of every error that codec reports to a user as one line."""

    exit_code = 1


class UsageError(CodecError):
    """Bad arguments, a missing input file, or an output that exists without --force."""

    exit_code = 2


class InputError(UsageError):
    """An input file that cannot be read as asked (missing, a directory, unreadable)."""


class FormatError(CodecError):
    """A bitstream that is corrupt, truncated or otherwise not a valid container."""

    exit_code = 3


class UnsupportedError(CodecError):
    """A valid input that this version cannot handle (a newer format, alpha, not an image, a limit)."""

    exit_code = 4


class LimitError(UnsupportedError):
    """A declared size beyond a configured limit (decompression-bomb guard)."""


class ModelError(CodecError):
    """An unknown model id or a model that does not fit the bitstream."""

    exit_code = 5


class WeightsError(ModelError):
    """A weights file that is missing, unreadable, or whose sha256 differs from the manifest."""


class OutputError(CodecError):
    """An output that could not be written for want of room or a working device: disk full, quota,
    file too large, read-only file system, an I/O error. Nothing is left at the output path; the
    same command may succeed once there is room, so it has its own exit code."""

    exit_code = 7


_OUT_OF_MEMORY_TEXTS = ("can't allocate memory", "not enough memory", "out of memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` reports an allocation failure: a MemoryError, or the RuntimeError that torch
    raises instead ("DefaultCPUAllocator: can't allocate memory: ...", "not enough memory: ...",
    "CUDA out of memory ..."; torch.cuda.OutOfMemoryError). Such a failure is about the input's size
    and this machine (exit 4), not a bug nor a weights problem."""
    if isinstance(exc, MemoryError):
        return True
    if not isinstance(exc, RuntimeError):
        return False
    text = str(exc).lower()
    return type(exc).__name__ == "OutOfMemoryError" or any(t in text for t in _OUT_OF_MEMORY_TEXTS)

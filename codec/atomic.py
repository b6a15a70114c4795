"""Atomic file writes: readers see either the old file or the complete new one, never a part.

Data flow:

    bytes ─► atomic_write ─┐
    with atomic_file(dest) as fp: fp.write(...) ─┴─► .<name>.codec-<8 hex>.tmp (locked, fsync'ed)
        ─► move_into_place (os.link, or os.replace with force) ─► dest ─► fsync of the directory

The temporary file sits beside the destination, holds an exclusive advisory lock for as long as
its writer lives, and is removed on any failure; one that a SIGKILL left behind is removed by the
next write of the same destination (`STALE_TEMP_SECONDS`). Every failure a user can cause becomes
an `InputError` (refused: exists, no directory, permission) or an `OutputError` (no room, read-only
file system, ...) with a one-line message that names the file. Standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import time
from pathlib import Path
from typing import BinaryIO, Iterator

from codec.errors import InputError, OutputError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so stale temporary files are left alone
    fcntl = None

__all__ = [
    "STALE_TEMP_SECONDS",
    "TEMP_MARK",
    "atomic_file",
    "atomic_write",
    "check_destination",
    "create_temp",
    "fsync_directory",
    "move_into_place",
    "one_line",
    "os_error_text",
    "write_error",
]

TEMP_MARK = "codec-"
"""Temporary files are `.<name>.codec-<8 hex digits>.tmp` beside the output: hidden, and recognisably
ours. A SIGKILL (or power loss) leaves one behind; the next write of the same output removes it."""

NAME_MAX = 255
"""Bytes of the longest file name the usual file systems take (ext4, XFS, btrfs, tmpfs, APFS): a
temporary name keeps the destination's name only as far as it fits (`temp_prefix`)."""

STALE_TEMP_SECONDS = 10.0
"""A temporary file that no process holds locked is removed only when it is at least this old, which
covers the instant between its creation and its locking by a live writer."""

# Errno values of os.link that mean "this file system has no hard links", not "refused".
_NO_HARD_LINKS = {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOSYS,
                  getattr(errno, "ENOTSUP", errno.EOPNOTSUPP), errno.EOPNOTSUPP}


def atomic_write(dest: str | Path, data: bytes, *, force: bool = False) -> int:
    """Writes `data` to `dest` so that readers see either the old file or the complete new one.

    The bytes go to a temporary file in the same directory (`.<name>.codec-<random>.tmp`, see
    `TEMP_MARK`), are flushed and fsync'ed, then moved into place. Without `force` the move is
    `os.link` (which fails atomically when `dest` appeared meanwhile) followed by removing the
    temporary name; where the file system has no hard links it falls back to `os.replace` after a
    fresh existence check, which leaves a short window in which a file created by someone else
    could be overwritten.
    With `force` the move is `os.replace`. On any failure the temporary file is removed.

    Args:
        dest: output path; its directory must exist.
        data: the bytes to write.
        force: overwrite an existing file.

    Returns:
        Number of bytes written.

    Raises:
        InputError: `dest` exists without `force`, is a directory, its directory is missing,
            or permission is denied.
        OutputError: any other write failure (disk full, file too large, read-only file system).
    """
    with atomic_file(dest, force=force) as fp:
        fp.write(data)
    return len(data)


@contextlib.contextmanager
def atomic_file(dest: str | Path, *, force: bool = False) -> Iterator[BinaryIO]:
    """A binary file to stream into that appears at `dest` only complete, when the block ends
    without an exception (same guarantees and errors as `atomic_write`); on an exception, or a
    kill, nothing is left at `dest` and the temporary file is removed (a SIGKILL leaves only the
    hidden `.<name>.codec-<random>.tmp`, which the next write of `dest` removes)."""
    dest = Path(dest)
    if is_stream(dest):  # a FIFO or a device (/dev/null, a terminal): written into, never renamed over
        yield from _stream_into(dest)
        return
    check_destination(dest, force)
    directory = dest.parent
    tmp, fd = create_temp(directory, dest)
    try:
        try:
            with open(fd, "r+b", closefd=False) as fp:
                yield fp
                fp.flush()
                os.fsync(fp.fileno())
        except OSError as exc:
            raise write_error(dest, exc) from None
        move_into_place(tmp, dest, force)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)  # releases the lock, after the temporary name is gone
    fsync_directory(directory)


def is_stream(dest: Path) -> bool:
    """Whether `dest` exists as something written into rather than replaced: a FIFO, a character
    or block device (such as /dev/null), or a socket. Renaming a file over one of those would
    destroy it (as root, `-o /dev/null --force` would break the machine's /dev/null)."""
    try:
        mode = os.stat(dest).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode)


class WholeWriter:
    """A binary file over a descriptor whose write() writes every byte or raises: a buffered
    writer on a pipe returns a short count when its reader goes away mid-write and drops the rest
    silently; here the next write raises BrokenPipeError instead."""

    def __init__(self, fd: int):
        self.fd = fd

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        while view:
            n = os.write(self.fd, view)
            if n <= 0:
                raise OSError(errno.EIO, "the write made no progress")
            view = view[n:]
        return len(data)

    def flush(self) -> None:
        pass


def write_all(fd: int, data) -> None:
    """All of `data` to descriptor `fd` (see WholeWriter)."""
    WholeWriter(fd).write(data)


def _stream_into(dest: Path) -> Iterator[BinaryIO]:
    """The bytes go straight into the FIFO or device `dest` (no temporary file, no atomicity: a
    stream has no old content to keep), every byte or an error."""
    try:
        fd = os.open(dest, os.O_WRONLY | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise write_error(dest, exc) from None
    try:
        yield WholeWriter(fd)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise write_error(dest, exc) from None
    finally:
        os.close(fd)


def temp_prefix(dest: Path) -> str:
    """`.<name>.codec-` for the temporary files of `dest`, the name cut (at a character boundary)
    so that the whole temporary name stays within NAME_MAX bytes: a legal long output name must
    not fail because of the 20 bytes its temporary name adds."""
    room = NAME_MAX - len(f"..{TEMP_MARK}00000000.tmp")
    name = dest.name.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore")
    return f".{name}.{TEMP_MARK}"


def check_destination(dest: Path, force: bool) -> None:
    """Refuses a missing directory, a directory as destination, and an existing file without force.

    Raises:
        InputError: one of those, in one line naming `dest`.
    """
    directory = dest.parent
    if not directory.is_dir():
        raise InputError(f"cannot write {dest}: directory {directory} does not exist")
    if dest.is_dir():
        raise InputError(f"cannot write {dest}: it is a directory")
    if not force and os.path.lexists(dest):
        raise InputError(f"{dest} exists; use --force to overwrite")


def create_temp(directory: Path, dest: Path) -> tuple[Path, int]:
    """Creates an empty, exclusive temporary file beside `dest` with the umask's permissions.

    Returns its path and a read-write descriptor that holds an exclusive advisory lock on it: the
    lock tells `_remove_stale_temps` in other runs that the file is in use, and the kernel drops it
    when the writer dies, even by SIGKILL. Close the descriptor only once the name is gone.
    """
    _remove_stale_temps(directory, dest)
    for _ in range(100):
        tmp = directory / f"{temp_prefix(dest)}{secrets.token_hex(4)}.tmp"
        try:
            # 0o666 & ~umask, like a plain open(); mkstemp would give 0o600 to the final file.
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise write_error(dest, exc) from None
        _try_lock(fd)
        return tmp, fd
    raise OutputError(f"cannot write {dest}: no free temporary name in {directory}")


def move_into_place(tmp: Path, dest: Path, force: bool) -> None:
    """Moves the complete temporary file `tmp` to `dest`: `os.replace` with `force`, else without
    ever replacing a file that exists at `dest` (see `atomic_write`).

    Raises:
        InputError: `dest` exists without `force`, or a refused write (see `write_error`).
        OutputError: any other failure of the move.
    """
    try:
        if force:
            os.replace(tmp, dest)
        else:
            _link_into_place(tmp, dest)
    except OSError as exc:
        raise write_error(dest, exc) from None


def fsync_directory(directory: Path) -> None:
    """Makes the new directory entry durable where the platform allows it (POSIX)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_error(dest: Path, exc: OSError) -> Exception:
    """Turns an OSError from writing `dest` into a one-line codec error."""
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        return InputError(f"cannot write {dest}: permission denied")
    if code in (errno.ENOENT, errno.ENOTDIR):
        return InputError(f"cannot write {dest}: directory {dest.parent} does not exist")
    if code == errno.ENOSPC:
        return OutputError(f"cannot write {dest}: no space left on device")
    if code == getattr(errno, "EDQUOT", None):
        return OutputError(f"cannot write {dest}: disk quota exceeded")
    if code == errno.EFBIG:
        return OutputError(f"cannot write {dest}: file too large for the file system")
    if code == errno.EROFS:
        return OutputError(f"cannot write {dest}: read-only file system")
    return OutputError(f"cannot write {dest}: {os_error_text(exc)}")


def one_line(exc: BaseException) -> str:
    """An exception's message squeezed onto one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


def os_error_text(exc: OSError) -> str:
    """The operating system's words for an OSError ("No space left on device"), else its message."""
    return exc.strerror or one_line(exc)


# ----------------------------------------------------------------------------------------------
# Locks and leftovers
# ----------------------------------------------------------------------------------------------


def _try_lock(fd: int) -> bool:
    """Takes an exclusive advisory lock on `fd` without waiting; False if another process holds one
    or the file system has no locks."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _remove_stale_temps(directory: Path, dest: Path) -> None:
    """Removes the temporary files of `dest` that killed runs left behind.

    A candidate is named `.<dest name>.codec-<8 hex>.tmp`, is a regular file, was last modified
    `STALE_TEMP_SECONDS` ago or more, and no process holds its lock (a live writer holds it from
    creation to rename). Anything else, and every failure, is left alone.
    """
    if fcntl is None:
        return
    pattern = re.compile(re.escape(temp_prefix(dest)) + r"[0-9a-f]{8}\.tmp")
    try:
        names = [name for name in os.listdir(directory) if pattern.fullmatch(name)]
    except OSError:
        return
    for name in names:
        path = directory / name
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if (stat.S_ISREG(st.st_mode) and time.time() - st.st_mtime >= STALE_TEMP_SECONDS
                    and _try_lock(fd) and os.stat(path, follow_symlinks=False).st_ino == st.st_ino):
                os.unlink(path)
        except OSError:
            pass
        finally:
            os.close(fd)


def _link_into_place(tmp: Path, dest: Path) -> None:
    """Moves `tmp` to `dest` without ever replacing a file that exists at `dest`."""
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise InputError(f"{dest} exists; use --force to overwrite") from None
    except (OSError, AttributeError, NotImplementedError) as exc:
        if isinstance(exc, OSError) and exc.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(dest):  # no hard links here: check again, then replace
            raise InputError(f"{dest} exists; use --force to overwrite") from None
        os.replace(tmp, dest)
        return
    os.unlink(tmp)

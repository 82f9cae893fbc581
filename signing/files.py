"""The small file steps every part of lotledger shares: a write that lands whole or not at all,
a directory made durable, and a lock that one process holds at a time.

Why one module: private keys, the verifier state, a witness's state, evidence files, bundles,
tiles and FSMA workbooks all need the same steps in the same order, and each hand-written copy
was a chance to get one wrong (the FSMA writer never synced at all). Why in signing/: it is the
lowest part, and its keys were the first files written this way. Nothing here knows what the
bytes mean.

A replacement survives a crash only if the data is synced before the rename (else the new name
may point at an empty or torn file) and the directory after it (else the rename itself may be
lost): `atomic_file` and `atomic_write` do both, in that order.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, TypeAlias

__all__ = ["ExclusiveLock", "LockHeld", "atomic_file", "atomic_path", "atomic_write", "exclusive_lock", "fsync_dir"]

_PathLike: TypeAlias = str | os.PathLike[str]

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


class LockHeld(BlockingIOError):
    """The lock is held by another process (or another open of the same file in this one).
    An OSError, so code that handles I/O failures handles it too; callers that owe a person a
    better sentence catch it and say what holds the lock."""


def fsync_dir(path: _PathLike) -> None:
    """fsync a directory, so that a file created, renamed or removed in it survives a crash.

    Raises OSError.
    """
    fd = os.open(path, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(path: Path) -> Path:
    """A hidden, unique name beside `path`: same directory, so the rename stays on one file system."""
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")


def _commit(tmp: Path, path: Path, sync_dir: bool) -> None:
    os.replace(tmp, path)
    if sync_dir:
        fsync_dir(path.parent)


@contextmanager
def atomic_file(
    path: _PathLike,
    *,
    temp: _PathLike | None = None,
    mode: int = 0o666,
    exact_mode: bool = False,
    sync_dir: bool = True,
) -> Iterator[BinaryIO]:
    """A binary file to stream into; when the block ends without an error it is flushed,
    fsynced, renamed over `path`, and the directory is fsynced. For data too large to hold in
    memory (bundles, the verifier state); see atomic_write for bytes in hand.

    `temp` names the file being written (e.g. `out.partial`): truncated if it exists, and left
    in place when the block fails, so that a person sees an interrupted run. Without it the
    file is a hidden, unique name beside `path`, created exclusively (no symlink followed) and
    removed when the block fails. `mode` is the creation mode, narrowed by the umask as open()
    does; with `exact_mode` the file gets exactly `mode` whatever the umask (keys: 0600).
    `sync_dir=False` leaves the directory to the caller, who syncs it once after many files.

    Raises OSError (and whatever the block raises); `path` is then untouched.
    """
    target = Path(path)
    if temp is None:
        tmp, flags, keep = _temp_name(target), os.O_EXCL | _NOFOLLOW, False
    else:
        tmp, flags, keep = Path(temp), os.O_TRUNC, True
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | _CLOEXEC | flags, mode)
    try:
        if exact_mode:
            os.fchmod(fd, mode)  # the umask may have cleared bits we want (0644 for a .pub)
        f = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        if not keep:
            tmp.unlink(missing_ok=True)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _commit(tmp, target, sync_dir)
    except BaseException:
        if not keep:
            tmp.unlink(missing_ok=True)
        raise


def atomic_write(
    path: _PathLike,
    data: bytes,
    *,
    temp: _PathLike | None = None,
    mode: int = 0o666,
    exact_mode: bool = False,
    sync_dir: bool = True,
) -> None:
    """Replace `path` with `data`, whole or not at all, durably (see atomic_file for the
    arguments). A crash leaves the old file or the new one, never a torn one.

    Raises OSError; `path` is then untouched.
    """
    with atomic_file(path, temp=temp, mode=mode, exact_mode=exact_mode, sync_dir=sync_dir) as f:
        f.write(data)


@contextmanager
def atomic_path(path: _PathLike, *, temp: _PathLike, sync_dir: bool = True) -> Iterator[Path]:
    """For a writer that opens its file by name (zipfile): yields `temp` to write; when the
    block ends without an error, `temp` is fsynced, renamed over `path`, and the directory is
    fsynced. A failed block leaves `temp` (as atomic_file does with a named one).

    Raises OSError (and whatever the block raises); `path` is then untouched.
    """
    tmp, target = Path(temp), Path(path)
    yield tmp
    fd = os.open(tmp, os.O_RDONLY | _CLOEXEC)  # fsync syncs the file, whichever descriptor wrote it
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    _commit(tmp, target, sync_dir)


class ExclusiveLock:
    """An flock held on a file or a directory until `close()` (or the end of a `with` block).
    The kernel drops it when the process dies, so a crash never leaves a stale lock behind."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases the flock
            self._fd = -1

    def __enter__(self) -> ExclusiveLock:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def exclusive_lock(path: _PathLike, *, mode: int = 0o644) -> ExclusiveLock:
    """Take an exclusive flock on `path` without waiting: on a directory itself (no lock file
    among what it holds, for a directory served as it is), or on a file, created with `mode`
    if missing.

    Raises LockHeld when another process holds it, OSError when `path` cannot be opened.
    """
    p = Path(path)
    if p.is_dir():
        fd = os.open(p, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    else:
        fd = os.open(p, os.O_RDWR | os.O_CREAT | _CLOEXEC, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        os.close(fd)
        raise LockHeld(e.errno, "locked by another process", os.fspath(p)) from e
    except BaseException:
        os.close(fd)
        raise
    return ExclusiveLock(p, fd)

"""signing/files.py: whole-or-nothing writes with the modes asked for, and one lock holder."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from lotledger.signing.files import LockHeld, atomic_file, atomic_path, atomic_write, exclusive_lock


@pytest.fixture
def strict_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_exact_mode_ignores_the_umask_and_plain_mode_follows_it(tmp_path: Path, strict_umask: None) -> None:
    atomic_write(tmp_path / "key", b"secret", mode=0o600, exact_mode=True)
    atomic_write(tmp_path / "key.pub", b"public", mode=0o644, exact_mode=True)
    atomic_write(tmp_path / "plain", b"x", mode=0o644)
    assert (_mode(tmp_path / "key"), _mode(tmp_path / "key.pub"), _mode(tmp_path / "plain")) == (0o600, 0o644, 0o600)


def test_a_failed_write_leaves_the_old_file_and_removes_its_hidden_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_file(target) as f:
        f.write(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_named_temporary_is_left_for_a_person_to_see(tmp_path: Path) -> None:
    target, partial = tmp_path / "log.bundle", tmp_path / "log.bundle.partial"
    with pytest.raises(RuntimeError), atomic_file(target, temp=partial) as f:
        f.write(b"half")
        raise RuntimeError("interrupted")
    assert not target.exists() and partial.read_bytes() == b"half"
    with atomic_file(target, temp=partial) as f:  # the next run truncates it
        f.write(b"whole")
    assert target.read_bytes() == b"whole" and not partial.exists()


def test_atomic_path_for_writers_that_open_by_name(tmp_path: Path) -> None:
    target = tmp_path / "book.xlsx"
    with atomic_path(target, temp=tmp_path / "book.xlsx.partial") as tmp:
        tmp.write_bytes(b"zip")
        assert not target.exists()
    assert target.read_bytes() == b"zip" and not tmp.exists()


def test_one_lock_holder_at_a_time_on_a_file_or_a_directory(tmp_path: Path) -> None:
    for path in (tmp_path / "lock", tmp_path):
        with exclusive_lock(path):
            with pytest.raises(LockHeld) as held:
                exclusive_lock(path)
            assert held.value.filename == str(path)
        exclusive_lock(path).close()  # released
    assert (tmp_path / "lock").is_file()  # a file lock is created; a directory is locked itself

"""Atomic writes: whole file or the old one, ordinary permissions, no temp files left."""

from __future__ import annotations

import os
import stat

import pytest

from momentloc.files import _file_mode, atomic_path, atomic_write, write_text_atomic


def test_writes_the_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    write_text_atomic(target, "héllo\n")
    assert target.read_text(encoding="utf-8") == "héllo\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_an_error_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as fh:
            fh.write(b"new, half")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_permissions_follow_the_umask_not_mkstemp(tmp_path):
    old = os.umask(0o022)
    _file_mode.cache_clear()  # the mode is read once per process
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        write_text_atomic(tmp_path / "atomic.txt", "x")
        with atomic_path(tmp_path / "named.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
        _file_mode.cache_clear()
    mode = stat.S_IMODE(plain.stat().st_mode)
    assert mode == 0o644
    assert stat.S_IMODE((tmp_path / "atomic.txt").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "named.bin").stat().st_mode) == mode


def test_only_whole_file_modes():
    with pytest.raises(ValueError, match="mode"):
        with atomic_write("x", "a"):
            pass

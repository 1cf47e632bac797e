"""Atomic writes: whole file or nothing, normal permissions, no temporary left behind."""

from __future__ import annotations

import os
import stat

import pytest

from carlib.files import atomic_write, atomic_write_text


def test_written_file_gets_plain_open_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = atomic_write_text("hello\n", tmp_path / "sub" / "a.txt")
    finally:
        os.umask(umask)
    assert path.read_text() == "hello\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's owner-only 0600
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    path = atomic_write_text("old", tmp_path / "b.json")

    def explode(target: str) -> None:
        with open(target, "w") as stream:
            stream.write("half")
        raise RuntimeError("disk full (simulated)")

    with pytest.raises(RuntimeError):
        atomic_write(explode, path)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]

"""atomic_write: all or nothing, private modes from the first byte, no temp files left behind."""

from __future__ import annotations

import os
import stat

import pytest

from gas.storage.files import atomic_write


def test_replaces_the_whole_file_with_the_given_mode(tmp_path):
    target = tmp_path / "key.pem"
    target.write_bytes(b"old")
    atomic_write(target, b"new contents", mode=0o600)
    assert target.read_bytes() == b"new contents"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    atomic_write(target, b"public", mode=0o644)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(tmp_path) == ["key.pem"]


def test_a_failed_write_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_bytes(b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["results.json"]


def test_missing_folder_is_an_error_not_a_stray_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "nope" / "f.bin", b"x")
    assert os.listdir(tmp_path) == []

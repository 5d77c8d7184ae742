"""core/files.py: positional writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ghga_connector.core import files
from ghga_connector.core.files import WRITE_SLICE, pwrite_all, start_writeback


def test_pwrite_all_writes_everything_in_bounded_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(3 * WRITE_SLICE + 123)
    calls: list[tuple[int, int]] = []
    real = os.pwrite

    def short_pwrite(fd: int, chunk: memoryview, offset: int) -> int:
        calls.append((len(chunk), offset))
        return real(fd, chunk[: max(1, len(chunk) - 7)], offset)  # the kernel may write less

    monkeypatch.setattr(files.os, "pwrite", short_pwrite)
    target = tmp_path / "out"
    fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        pwrite_all(fd, memoryview(data), 10)
    finally:
        os.close(fd)
    assert target.read_bytes() == b"\0" * 10 + data
    assert max(size for size, _ in calls) <= WRITE_SLICE
    offsets = [offset for _, offset in calls]
    assert offsets == sorted(offsets) and offsets[0] == 10


@pytest.mark.linux_only
def test_start_writeback_asks_the_kernel_for_a_file_and_not_for_a_pipe(tmp_path: Path) -> None:
    target = tmp_path / "out"
    fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        pwrite_all(fd, b"x" * 8192, 0)
        assert start_writeback(fd, 0, 8192) is True
    finally:
        os.close(fd)
    reader, writer = os.pipe()
    try:
        assert start_writeback(writer, 0, 1) is False
    finally:
        os.close(reader)
        os.close(writer)


def test_start_writeback_does_nothing_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    files._sync_file_range.cache_clear()
    monkeypatch.setattr(files.sys, "platform", "darwin")
    try:
        assert start_writeback(0, 0, 1) is False
    finally:
        files._sync_file_range.cache_clear()

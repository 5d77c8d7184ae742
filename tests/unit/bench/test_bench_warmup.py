"""Unit tests of the page-cache warm-up before measured commands (benchmarks/env.py)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from benchmarks.env import WARM_MARGIN, Env, mem_available, warm_bytes, warm_page_cache
from benchmarks.model import GIB, MIB, Case


def test_twice_the_case_plus_a_margin() -> None:
    assert warm_bytes(GIB, 24 * GIB) == 2 * GIB + WARM_MARGIN


def test_at_most_half_the_available_memory() -> None:
    assert warm_bytes(16 * GIB, 20 * GIB) == 10 * GIB


def test_nothing_where_the_available_memory_is_unknown() -> None:
    assert warm_bytes(GIB, None) == 0


def test_writes_the_bytes_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real_pwrite = os.pwrite

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        seen.append(os.fstat(fd).st_size)
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    assert warm_page_cache(tmp_path, 3 * MIB + 5, chunk=MIB) == 3 * MIB + 5
    assert seen == [0, MIB, 2 * MIB, 3 * MIB]
    assert list(tmp_path.iterdir()) == []


def test_zero_bytes_writes_nothing(tmp_path: Path) -> None:
    assert warm_page_cache(tmp_path, 0) == 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.linux_only
def test_available_memory_is_read_on_linux() -> None:
    available = mem_available()
    assert available is not None and available > 0


def _env(tmp_path: Path, *, warm: bool) -> Env:
    env = Env.__new__(Env)
    env.opts = SimpleNamespace(warm=warm, work_dir=tmp_path)  # type: ignore[assignment]
    return env


def test_env_warms_for_the_case_unless_switched_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Path, int]] = []
    monkeypatch.setattr("benchmarks.env.mem_available", lambda: 8 * GIB)
    monkeypatch.setattr("benchmarks.env.warm_page_cache", lambda f, n: calls.append((f, n)))
    case = Case("small", 2, MIB, "random")
    _env(tmp_path, warm=True).warm(case)
    _env(tmp_path, warm=False).warm(case)
    assert calls == [(tmp_path, 2 * case.total_bytes + WARM_MARGIN)]

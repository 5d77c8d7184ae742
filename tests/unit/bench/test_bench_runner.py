"""Unit tests of one benchmark repetition with stand-in tools (benchmarks/runner.py).

The tools copy the inputs instead of transferring them; what is tested is that every
row is checked and that a failed check makes the row ``ok: false``.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from benchmarks.data import InputFile, make_random
from benchmarks.measure import ProcResult
from benchmarks.model import BOTO3, MIB, OURS, V401, Case
from benchmarks.runner import run_rep
from benchmarks.tools import UploadCheck, Uploaded


@dataclass
class FakeTool:
    name: str
    uploads: bool = True
    calls_ghga_api: bool = True
    pending: bool = False
    corrupt_download: bool = False
    check_error: str | None = None
    calls: list[str] = field(default_factory=list)

    def upload(self, env: Any, case: Case, inputs: Sequence[InputFile], tag: str) -> Uploaded:
        self.calls.append(f"upload {tag}")
        return Uploaded(ProcResult(["up"], 0, 1.0, 0.5, 0.1, MIB), box=f"box-{tag}", tag=tag)

    def check(self, env: Any, inputs: Sequence[InputFile], uploaded: Uploaded) -> UploadCheck:
        if self.pending:
            return UploadCheck("by download", pending=True)
        if self.check_error:
            return UploadCheck("sha256", self.check_error)
        return UploadCheck("sha256", None, [f"GHGA{i}" for i, _ in enumerate(inputs)])

    def download(
        self,
        env: Any,
        case: Case,
        inputs: Sequence[InputFile],
        accessions: Sequence[str],
        out: Path,
        tag: str,
    ) -> ProcResult:
        self.calls.append(f"download {tag} {len(accessions)}")
        for f in inputs:
            shutil.copyfile(f.path, out / f.path.name)
        if self.corrupt_download:
            (out / inputs[0].path.name).write_bytes(b"not the input")
        return ProcResult(["down"], 0, 1.0, 0.5, 0.1, MIB)

    def explain(self, result: ProcResult) -> str:
        return result.tail()


class FakeEnv:
    s3_label = "fake"

    def __init__(self, work: Path) -> None:
        self.opts = SimpleNamespace(log=lambda msg: None, work_dir=work)
        self.staged: list[str] = []
        self.admin = SimpleNamespace(stage=self.staged.append)
        self.meter = SimpleNamespace(read=lambda: None)
        self.events: list[str] = []

    def warm(self, case: Case) -> None:
        self.events.append("warm")

    def fresh_dir(self, *parts: str) -> Path:
        path = self.opts.work_dir.joinpath(*parts)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path


@pytest.fixture
def inputs(tmp_path: Path) -> list[InputFile]:
    return [make_random(tmp_path / "in" / f"f{i}.bin", 1000 + i, f"seed{i}") for i in range(2)]


def _rows(
    tmp_path: Path, inputs: list[InputFile], tools: list[FakeTool], rep: int = 1
) -> dict[tuple[str, str], Any]:
    case = Case("small", len(inputs), 1000, "random")
    rows = run_rep(FakeEnv(tmp_path / "work"), case, inputs, tools, rep)  # type: ignore[arg-type]
    return {(r.tool, r.direction): r for r in rows}


def test_every_row_passes_when_every_check_passes(tmp_path: Path, inputs: list[InputFile]) -> None:
    tools = [FakeTool(OURS), FakeTool(V401), FakeTool(BOTO3, calls_ghga_api=False, pending=True)]
    rows = _rows(tmp_path, inputs, tools)
    assert len(rows) == 6
    assert all(r.ok for r in rows.values()), [r.error for r in rows.values()]
    assert rows[(OURS, "upload")].check == "sha256"
    assert rows[(OURS, "download")].check == "sha256 of every output file"


def test_a_wrong_download_is_not_ok(tmp_path: Path, inputs: list[InputFile]) -> None:
    rows = _rows(tmp_path, inputs, [FakeTool(OURS, corrupt_download=True)])
    down = rows[(OURS, "download")]
    assert not down.ok
    assert "SHA-256 mismatch" in (down.error or "")
    assert rows[(OURS, "upload")].ok


def test_an_upload_checked_by_its_download_fails_with_it(
    tmp_path: Path, inputs: list[InputFile]
) -> None:
    boto3 = FakeTool(BOTO3, calls_ghga_api=False, pending=True, corrupt_download=True)
    rows = _rows(tmp_path, inputs, [FakeTool(OURS), boto3])
    assert not rows[(BOTO3, "download")].ok
    up = rows[(BOTO3, "upload")]
    assert not up.ok
    assert "not verified" in (up.error or "")


def test_an_upload_that_fails_its_check_is_not_ok_and_not_downloaded(
    tmp_path: Path, inputs: list[InputFile]
) -> None:
    ours = FakeTool(OURS, check_error="SHA-256 of archived content differs from the inputs")
    rows = _rows(tmp_path, inputs, [ours])
    assert not rows[(OURS, "upload")].ok
    assert "differs" in (rows[(OURS, "upload")].error or "")
    assert not rows[(OURS, "download")].ok  # nothing trustworthy to download
    assert not any(c.startswith("download") for c in ours.calls)


def test_downloads_fetch_our_archived_files_and_the_order_rotates(
    tmp_path: Path, inputs: list[InputFile]
) -> None:
    ours, old = FakeTool(OURS), FakeTool(V401)
    case = Case("small", 2, 1000, "random")
    env = FakeEnv(tmp_path / "work")
    rows = run_rep(env, case, inputs, [ours, old], 2)  # type: ignore[arg-type]
    assert env.staged == ["GHGA0", "GHGA1"]
    assert [(r.tool, r.direction) for r in rows if r.direction == "download"] == [
        (V401, "download"),
        (OURS, "download"),
    ]
    assert old.calls == ["upload r2c0", "download r2c0 2"]


def test_every_measured_command_starts_right_after_a_page_cache_warmup(
    tmp_path: Path, inputs: list[InputFile]
) -> None:
    env = FakeEnv(tmp_path / "work")
    ours = FakeTool(OURS, calls=env.events)
    boto = FakeTool(BOTO3, calls_ghga_api=False, calls=env.events)
    run_rep(env, Case("small", 2, 1000, "random"), inputs, [ours, boto], 1)  # type: ignore[arg-type]
    assert env.events == [
        "warm",
        "upload r1c0",
        "warm",
        "upload r1c0",
        "warm",
        "download r1c0 2",
        "warm",
        "download r1c0 0",
    ]


def _archived(box: str, alias: str, acc: str | None, state: str = "archived") -> Any:
    from benchmarks.sandbox_admin import ArchivedFile

    return ArchivedFile(box, alias, state, acc, None if state == "archived" else "bad MAC")


def test_archived_sha256_must_equal_the_inputs(inputs: list[InputFile]) -> None:
    from benchmarks.tools import compare_archived

    archived = [_archived("b", "f0.bin", "GHGA1"), _archived("b", "f1.bin", "GHGA2")]
    right = {"GHGA1": inputs[0].sha256, "GHGA2": inputs[1].sha256}
    env = SimpleNamespace(admin=SimpleNamespace(archived_sha256=lambda accs: right))
    assert compare_archived(env, inputs, archived, "b") == (["GHGA1", "GHGA2"], None)  # type: ignore[arg-type]
    wrong = {"GHGA1": inputs[0].sha256, "GHGA2": inputs[0].sha256}
    env = SimpleNamespace(admin=SimpleNamespace(archived_sha256=lambda accs: wrong))
    _, error = compare_archived(env, inputs, archived, "b")  # type: ignore[arg-type]
    assert error is not None and "differs" in error


def test_an_upload_the_sandbox_could_not_decrypt_fails(inputs: list[InputFile]) -> None:
    from benchmarks.tools import compare_archived

    archived = [_archived("b", "f0.bin", "GHGA1"), _archived("b", "f1.bin", None, "failed")]
    env = SimpleNamespace(admin=SimpleNamespace(archived_sha256=lambda accs: {}))
    accessions, error = compare_archived(env, inputs, archived, "b")  # type: ignore[arg-type]
    assert accessions == []
    assert error is not None and "f1.bin: failed bad MAC" in error

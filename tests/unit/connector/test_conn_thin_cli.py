"""The layers under the CLI: config.describe_sources, the handler's ls/delete/status
methods, and the renderers of reporting/ (tables, JSON lines)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.cli import app
from ghga_connector.config import describe_sources
from ghga_connector.core.browse import unfinished_uploads
from ghga_connector.core.handler import TransferHandler
from ghga_connector.core.journal import (
    FileIdentity,
    JournalStore,
    PartRecord,
    UploadJournal,
    seal_secret,
)
from ghga_connector.core.planning import encrypted_size
from ghga_connector.core.ports import (
    DownloaderBase,
    DownloadJob,
    FileStagerBase,
    ProgressReporter,
    UploaderBase,
    UploadJob,
    WorkPackageAccessorBase,
)
from ghga_connector.errors import UserInputError
from ghga_connector.models import (
    DrsObject,
    FileOutcome,
    FileUploadState,
    Outcome,
    UploadListItem,
    WorkPackage,
)
from ghga_connector.reporting import tables
from ghga_connector.reporting.json_lines import write_planned

BOX = "66666666-7777-4888-9999-aaaaaaaaaaaa"


@pytest.fixture
def runner(clean_env: Path) -> CliRunner:
    return CliRunner()


def _config_rows(runner: CliRunner, *args: str) -> dict[str, dict[str, str]]:
    result = runner.invoke(app, ["--json", *args, "config"])
    assert result.exit_code == 0, result.output
    return {row["setting"]: row for row in map(json.loads, result.stdout.splitlines())}


# --- where a setting comes from ------------------------------------------------------------


def test_config_reports_a_dotenv_value_as_dotenv(runner: CliRunner) -> None:
    Path(".env").write_text("GHGA_CONNECTOR_MAX_WAIT_TIME=23\n")
    rows = _config_rows(runner)
    assert rows["max_wait_time"] == {"setting": "max_wait_time", "value": "23", "source": ".env"}
    assert rows["part_size"]["source"] == "default"


def test_config_sources_follow_the_precedence(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("conf.yaml").write_text("max_wait_time: 17\npart_size: 8388608\ntimeout: 5\n")
    Path(".env").write_text(
        "GHGA_CONNECTOR_PART_SIZE=16777216\nGHGA_CONNECTOR_TIMEOUT=7\n"
        "GHGA_CONNECTOR_CONNECT_TIMEOUT=3\n"
    )
    monkeypatch.setenv("GHGA_CONNECTOR_TIMEOUT", "9")
    rows = _config_rows(runner, "--config", "conf.yaml")
    assert (rows["timeout"]["value"], rows["timeout"]["source"]) == ("9.0", "environment")
    # an explicit --config beats .env; .env fills in what it leaves out
    assert (rows["part_size"]["value"], rows["part_size"]["source"]) == ("8388608", "conf.yaml")
    assert (rows["max_wait_time"]["value"], rows["max_wait_time"]["source"]) == ("17", "conf.yaml")
    assert (rows["connect_timeout"]["value"], rows["connect_timeout"]["source"]) == ("3.0", ".env")
    assert rows["per_request_jitter"]["source"] == "default"


def test_describe_sources_redacts(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHGA_CONNECTOR_PROXY", "http://me:pw@proxy.example.org:3128")
    rows, path = describe_sources(redact={"proxy": lambda _: "hidden"})
    by_name = {row.setting: row for row in rows}
    assert path is None
    assert (by_name["proxy"].value, by_name["proxy"].source) == ("hidden", "environment")
    assert by_name["ca_bundle"].value == "None"  # empty values are not passed to redact


# --- the handler's methods for ls and delete -------------------------------------------------


class _Accessor(WorkPackageAccessorBase):
    def __init__(self, package: WorkPackage, uploads: list[UploadListItem]) -> None:
        self.package = package
        self.uploads = uploads

    async def get_work_package(self) -> WorkPackage:
        return self.package

    async def upload_wot(
        self,
        work_type: str,
        *,
        alias: str | None = None,
        file_id: str | None = None,
        force_new: bool = False,
    ) -> str:
        return "wot"

    async def download_wot(self, accession: str, *, force_new: bool = False) -> str:
        return "wot"

    async def list_uploads(self) -> list[UploadListItem]:
        return list(self.uploads)

    @property
    def file_upload_box_id(self) -> str:
        return BOX


class _Uploader(UploaderBase):
    def __init__(self) -> None:
        self.deleted: list[str] = []
        self.forgotten: list[str] = []

    async def upload(self, job: UploadJob) -> FileOutcome:
        raise AssertionError("not used")

    async def delete(self, file_id: str) -> None:
        self.deleted.append(file_id)

    def forget(self, alias: str) -> None:
        self.forgotten.append(alias)


class _Stager(FileStagerBase):
    async def staged_object(self, accession: str, *, force_new: bool = False) -> DrsObject:
        return DrsObject(accession=accession, download_url="http://s3/x", size=65_564)

    async def probe(self, accession: str) -> DrsObject | None:
        return None if accession == "GHGAF002" else await self.staged_object(accession)


class _Downloader(DownloaderBase):
    async def download(self, job: DownloadJob, drs: DrsObject) -> FileOutcome:
        raise AssertionError("not used")


class _Reporter(ProgressReporter):
    def file_started(self, name: str, total: int) -> None:
        pass

    def advance(self, name: str, nbytes: int) -> None:
        pass

    def file_status(self, name: str, status: str) -> None:
        pass

    def file_finished(self, outcome: FileOutcome) -> None:
        pass

    def message(self, text: str, *, level: str = "info") -> None:
        pass


UPLOAD_PACKAGE = WorkPackage(
    type="upload", files={}, research_data_upload_box_id="rdub", file_upload_box_id=BOX
)
UPLOADS = [
    UploadListItem(id="id-b", alias="b.bam", state=FileUploadState.INBOX, decrypted_size=5),
    UploadListItem(id="id-a", alias="a.bam", state=FileUploadState.INIT),
    UploadListItem(id="id-c", alias="c.bam", state=FileUploadState.CANCELLED),
]


def _handler(package: WorkPackage, uploader: _Uploader | None = None) -> TransferHandler:
    return TransferHandler(
        accessor=_Accessor(package, UPLOADS),
        stager=_Stager(),
        uploader=uploader or _Uploader(),
        downloader=_Downloader(),
        reporter=_Reporter(),
        max_parallel_files=1,
    )


async def test_find_upload_by_alias_or_file_id() -> None:
    handler = _handler(UPLOAD_PACKAGE)
    assert (await handler.find_upload(alias="b.bam")).id == "id-b"
    assert (await handler.find_upload(file_id="id-a")).alias == "a.bam"
    with pytest.raises(UserInputError, match=r"No upload 'c\.bam'"):
        await handler.find_upload(alias="c.bam")  # removed uploads are not found


async def test_remove_upload_deletes_it_and_forgets_its_journal() -> None:
    uploader = _Uploader()
    handler = _handler(UPLOAD_PACKAGE, uploader)
    await handler.remove_upload(await handler.find_upload(alias="b.bam"))
    assert uploader.deleted == ["id-b"]
    assert uploader.forgotten == ["b.bam"]


async def test_remove_upload_needs_an_upload_package() -> None:
    uploader = _Uploader()
    handler = _handler(WorkPackage(type="download", files={"GHGAF001": ".bam"}), uploader)
    with pytest.raises(UserInputError, match="download work package"):
        await handler.remove_upload(UPLOADS[0])
    assert uploader.deleted == uploader.forgotten == []


async def test_listing_of_an_upload_box() -> None:
    handler = _handler(UPLOAD_PACKAGE)
    rows = [row.as_row() for row in await handler.listing()]
    assert rows == [
        {"alias": "a.bam", "state": "init", "size": None, "file_id": "id-a"},
        {"alias": "b.bam", "state": "inbox", "size": 5, "file_id": "id-b"},
    ]
    assert [row.as_row()["alias"] for row in await handler.listing(show_all=True)] == [
        "a.bam",
        "b.bam",
        "c.bam",
    ]


async def test_listing_of_a_download_package() -> None:
    package = WorkPackage(type="download", files={"GHGAF002": ".vcf.gz", "GHGAF001": ".bam"})
    rows = [row.as_row() for row in await _handler(package).listing()]
    assert rows == [
        {"accession": "GHGAF001", "file": "GHGAF001.bam", "note": None},
        {"accession": "GHGAF002", "file": "GHGAF002.vcf.gz", "note": None},
    ]
    detailed = [row.as_row() for row in await _handler(package).listing(details=True)]
    assert [(r["size"], r["staged"]) for r in detailed] == [(65_536, True), (None, False)]


# --- status: unfinished uploads and their part counts -----------------------------------------


def _journal(source: Path, keys: KeyPair, part_size: int) -> UploadJournal:
    return UploadJournal(
        box_id=BOX,
        alias="big.bam",
        file_id="file-1",
        storage_alias="hub",
        path=str(source.resolve()),
        identity=FileIdentity.of(source),
        part_size=part_size,
        envelope=b"crypt4gh" + bytes(116),
        sealed_secret=seal_secret(bytes(32), keys),
    )


def test_unfinished_uploads_count_parts_of_the_encrypted_file(
    tmp_path: Path, user_keys: KeyPair
) -> None:
    part_size = 5 * 65_564 * 16  # whole segments, 5,245,120 bytes
    plain = 2 * part_size - 100  # two parts of plaintext, but three once encrypted
    source = tmp_path / "big.bam"
    with source.open("wb") as handle:
        handle.truncate(plain)  # sparse
    store = JournalStore(tmp_path / "state")
    journal = _journal(source, user_keys, part_size)
    store.create(journal)
    store.add_part(journal, PartRecord(1, "m", "s", "p"))
    (found,) = unfinished_uploads(tmp_path / "state")
    assert found.parts_stored == 1
    # 161 segments add 161 × 28 bytes, and the envelope comes first: three parts.
    assert encrypted_size(plain) > 2 * part_size
    assert found.parts_total == 3
    assert (found.alias, found.bytes, found.file_id) == ("big.bam", plain, "file-1")


def test_status_lists_an_unfinished_upload(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, user_keys: KeyPair
) -> None:
    source = Path("a.bam")
    source.write_bytes(b"x" * 1000)
    JournalStore(Path("state")).create(_journal(source, user_keys, 5_245_120))
    monkeypatch.setenv("GHGA_CONNECTOR_STATE_DIR", str(Path.cwd() / "state"))
    result = runner.invoke(app, ["--json", "status"])
    assert result.exit_code == 0, result.output
    (row,) = map(json.loads, result.stdout.splitlines())
    assert row == {
        "alias": "big.bam",
        "path": str(source.resolve()),
        "bytes": 1000,
        "parts_stored": 0,
        "parts_total": 1,
        "file_id": "file-1",
    }
    table = runner.invoke(app, ["status"])
    assert "Unfinished uploads" in table.stdout and "big.bam" in table.stdout


# --- reporting/ renderers -------------------------------------------------------------------


def test_listing_table_says_what_is_not_known_yet(capsys: pytest.CaptureFixture[str]) -> None:
    tables.print_listing(
        [
            {"accession": "GHGAF001", "file": "GHGAF001.bam", "size": 65_536, "staged": True},
            {"accession": "GHGAF002", "file": "GHGAF002.bam", "size": None, "staged": False},
        ]
    )
    out = capsys.readouterr().out
    assert "65,536" in out and "yes" in out
    assert "known once staged" in out and "no (being staged)" in out


def test_summary_table_names_retries(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = FileOutcome(name="a.bam", outcome=Outcome.DONE, size=1234)
    tables.print_summary([outcome], "Upload", {"503": 2, "ReadTimeout": 1})
    err = capsys.readouterr().err
    assert "Upload summary" in err and "1,234" in err
    assert "Retried requests: 3 (503 ×2, ReadTimeout ×1)" in err


def test_planned_rows_only_in_json_lines() -> None:
    out = io.StringIO()
    write_planned(
        [
            FileOutcome(name="a.bam", outcome=Outcome.PLANNED, size=3, message="would upload"),
            FileOutcome(name="b.bam", outcome=Outcome.DONE, size=4),
        ],
        out,
    )
    (row,) = map(json.loads, out.getvalue().splitlines())
    assert (row["file"], row["outcome"], row["bytes"]) == ("a.bam", "planned", 3)
    assert os.linesep not in out.getvalue().rstrip("\n")

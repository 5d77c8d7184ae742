"""core/handler.py: the transfer handler over in-memory fakes of the ports."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.fakes import MemoryGhga

from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.core.handler import TransferHandler
from ghga_connector.core.naming import safe_file_name
from ghga_connector.core.ports import (
    DownloaderBase,
    DownloadJob,
    FileStagerBase,
    ProgressReporter,
    UploaderBase,
    UploadJob,
    WorkPackageAccessorBase,
)
from ghga_connector.core.upload import Uploader
from ghga_connector.errors import (
    ServerResponseError,
    StagingTimeoutError,
    UploadRejectedError,
    UserInputError,
)
from ghga_connector.models import (
    DrsObject,
    FileOutcome,
    FileUploadState,
    Outcome,
    UploadListItem,
    WellKnownValues,
    WorkPackage,
)

FUB = "66666666-7777-4888-9999-aaaaaaaaaaaa"
UPLOAD_PACKAGE = WorkPackage(
    type="upload", files={}, research_data_upload_box_id="rdub", file_upload_box_id=FUB
)
DOWNLOAD_PACKAGE = WorkPackage(
    type="download", files={"GHGAF002": ".vcf.gz", "GHGAF001": ".bam", "GHGAF003": ""}
)


class FakeAccessor(WorkPackageAccessorBase):
    def __init__(self, package: WorkPackage, uploads: list[UploadListItem] | None = None) -> None:
        self.package = package
        self.uploads = uploads or []
        self.wots: list[tuple[str, str | None, str | None, bool]] = []

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
        self.wots.append((work_type, alias, file_id, force_new))
        return "wot"

    async def download_wot(self, accession: str, *, force_new: bool = False) -> str:
        return "wot"

    async def list_uploads(self) -> list[UploadListItem]:
        return list(self.uploads)

    @property
    def file_upload_box_id(self) -> str:
        return FUB


class FakeUploader(UploaderBase):
    def __init__(self, fail: set[str] | None = None) -> None:
        self.jobs: list[UploadJob] = []
        self.deleted: list[str] = []
        self.fail = fail or set()

    async def upload(self, job: UploadJob) -> FileOutcome:
        self.jobs.append(job)
        outcome = Outcome.FAILED if job.alias in self.fail else Outcome.DONE
        return FileOutcome(name=job.alias, outcome=outcome, size=job.size, path=job.path)

    async def delete(self, file_id: str) -> None:
        self.deleted.append(file_id)


class FakeStager(FileStagerBase):
    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.fail = fail or {}
        self.asked: list[str] = []

    async def staged_object(self, accession: str, *, force_new: bool = False) -> DrsObject:
        self.asked.append(accession)
        if accession in self.fail:
            raise self.fail[accession]
        return DrsObject(accession=accession, download_url="http://s3/x", size=29, sha256="ab" * 32)

    async def probe(self, accession: str) -> DrsObject | None:
        return None if accession in self.fail else await self.staged_object(accession)


class FakeDownloader(DownloaderBase):
    def __init__(self) -> None:
        self.jobs: list[DownloadJob] = []

    async def download(self, job: DownloadJob, drs: DrsObject) -> FileOutcome:
        self.jobs.append(job)
        job.target.write_bytes(b"data")
        return FileOutcome(
            name=job.target.name, outcome=Outcome.DONE, path=job.target, size=drs.size
        )


class FakeReporter(ProgressReporter):
    def __init__(self) -> None:
        self.finished: list[FileOutcome] = []
        self.messages: list[tuple[str, str]] = []
        self.statuses: list[tuple[str, str]] = []

    def file_started(self, name: str, total: int) -> None:
        pass

    def advance(self, name: str, nbytes: int) -> None:
        pass

    def file_status(self, name: str, status: str) -> None:
        self.statuses.append((name, status))

    def file_finished(self, outcome: FileOutcome) -> None:
        self.finished.append(outcome)

    def message(self, text: str, *, level: str = "info") -> None:
        self.messages.append((level, text))


#: The content of every local file of ``_job`` and its SHA-256.
CONTENT = b"0123456789"
CONTENT_SHA256 = hashlib.sha256(CONTENT).hexdigest()
DATA = Path("/nonexistent")


@pytest.fixture(autouse=True)
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``_job`` files live in a fresh folder per test (beside, not in, ``tmp_path``)."""
    global DATA
    DATA = tmp_path_factory.mktemp("data")
    yield
    DATA = Path("/nonexistent")


def _item(alias: str, state: str, file_id: str | None = None) -> UploadListItem:
    return UploadListItem(
        id=file_id or f"id-{alias}",
        alias=alias,
        state=FileUploadState(state),
        decrypted_size=len(CONTENT),
        decrypted_sha256=CONTENT_SHA256,
    )


def _handler(
    accessor: FakeAccessor,
    *,
    uploader: FakeUploader | None = None,
    stager: FakeStager | None = None,
    downloader: FakeDownloader | None = None,
    reporter: FakeReporter | None = None,
) -> TransferHandler:
    return TransferHandler(
        accessor=accessor,
        stager=stager or FakeStager(),
        uploader=uploader or FakeUploader(),
        downloader=downloader or FakeDownloader(),
        reporter=reporter or FakeReporter(),
        max_parallel_files=2,
    )


def _job(alias: str, overwrite: bool = False, content: bytes = CONTENT) -> UploadJob:
    path = DATA / alias
    path.write_bytes(content)
    return UploadJob(path=path, alias=alias, size=len(content), overwrite=overwrite)


# --- upload ---------------------------------------------------------------------------


EXISTING = [
    _item("inbox.bam", "inbox"),
    _item("archived.bam", "archived"),
    _item("interrogated.bam", "interrogated"),
    _item("init.bam", "init", "init-file-id"),
    _item("failed.bam", "failed"),
    _item("cancelled.bam", "cancelled"),
]


async def test_upload_skips_complete_aliases() -> None:
    uploader, reporter = FakeUploader(), FakeReporter()
    handler = _handler(FakeAccessor(UPLOAD_PACKAGE, EXISTING), uploader=uploader, reporter=reporter)
    jobs = [
        _job(a)
        for a in ("inbox.bam", "archived.bam", "interrogated.bam", "failed.bam", "cancelled.bam")
    ] + [_job("new.bam")]
    outcomes = await handler.upload(jobs)
    assert [o.name for o in outcomes] == [j.alias for j in jobs]  # input order
    assert [o.outcome for o in outcomes] == [Outcome.SKIPPED] * 3 + [Outcome.DONE] * 3
    assert all("--overwrite" in o.message for o in outcomes[:3])
    assert sorted(j.alias for j in uploader.jobs) == ["cancelled.bam", "failed.bam", "new.bam"]
    assert all(j.unfinished_file_id is None for j in uploader.jobs)
    # each proven skip is reported once; the files are checked in parallel, in any order
    assert sorted(o.name for o in reporter.finished) == [
        "archived.bam",
        "inbox.bam",
        "interrogated.bam",
    ]


async def test_upload_overwrite_replaces_complete_aliases() -> None:
    uploader = FakeUploader()
    handler = _handler(FakeAccessor(UPLOAD_PACKAGE, EXISTING), uploader=uploader)
    outcomes = await handler.upload([_job("inbox.bam", overwrite=True)])
    assert outcomes[0].outcome is Outcome.DONE
    assert uploader.jobs == [_job("inbox.bam", overwrite=True)]


async def test_upload_hands_unfinished_init_upload_to_uploader() -> None:
    uploader = FakeUploader()
    handler = _handler(FakeAccessor(UPLOAD_PACKAGE, EXISTING), uploader=uploader)
    outcomes = await handler.upload([_job("init.bam")])
    assert outcomes[0].outcome is Outcome.DONE
    (job,) = uploader.jobs
    assert job.alias == "init.bam"
    assert job.unfinished_file_id == "init-file-id"


#: The uploads of an open box (an archived upload only exists in an archived box).
OPEN_BOX = [i for i in EXISTING if i.state.value != "archived"]


async def test_dry_run_transfers_nothing() -> None:
    uploader = FakeUploader()
    handler = _handler(FakeAccessor(UPLOAD_PACKAGE, OPEN_BOX), uploader=uploader)
    outcomes = await handler.upload(
        [_job("inbox.bam"), _job("new.bam"), _job("interrogated.bam", overwrite=True)],
        dry_run=True,
    )
    assert uploader.jobs == []
    assert [o.outcome for o in outcomes] == [Outcome.SKIPPED, Outcome.PLANNED, Outcome.PLANNED]
    assert outcomes[1].message == "would upload"
    assert "replace" in outcomes[2].message


async def test_failed_upload_does_not_stop_others() -> None:
    uploader = FakeUploader(fail={"b.bam"})
    handler = _handler(FakeAccessor(UPLOAD_PACKAGE), uploader=uploader)
    outcomes = await handler.upload([_job("a.bam"), _job("b.bam"), _job("c.bam"), _job("d.bam")])
    assert [o.outcome for o in outcomes] == [
        Outcome.DONE,
        Outcome.FAILED,
        Outcome.DONE,
        Outcome.DONE,
    ]
    assert sorted(j.alias for j in uploader.jobs) == ["a.bam", "b.bam", "c.bam", "d.bam"]


async def test_upload_with_download_token() -> None:
    uploader = FakeUploader()
    handler = _handler(FakeAccessor(DOWNLOAD_PACKAGE), uploader=uploader)
    with pytest.raises(UserInputError, match="download work package"):
        await handler.upload([_job("a.bam")])
    with pytest.raises(UserInputError):
        await handler.list_uploads()
    assert uploader.jobs == []


async def test_list_and_delete_uploads() -> None:
    uploader = FakeUploader()
    handler = _handler(FakeAccessor(UPLOAD_PACKAGE, EXISTING), uploader=uploader)
    assert await handler.list_uploads() == EXISTING
    await handler.delete_upload("id-inbox.bam")
    assert uploader.deleted == ["id-inbox.bam"]


# --- the real Uploader decides how an unfinished upload is replaced -------------------


class RejectingUcs(MemoryGhga):
    """Duck-typed UcsClient that records create_upload and refuses it."""

    def __init__(self) -> None:
        super().__init__()
        self.creates: list[dict[str, object]] = []

    async def create_upload(self, box_id: str, token: object, **kwargs: object) -> tuple[str, str]:
        self.creates.append({"box_id": box_id, **kwargs})
        raise UploadRejectedError("refused", exception_id="boxStateError", status_code=409)


async def test_unfinished_init_upload_is_replaced_with_overwrite(
    tmp_path: Path, user_keys: KeyPair
) -> None:
    path = tmp_path / "init.bam"
    path.write_bytes(b"x" * 100)
    ucs = RejectingUcs()
    reporter = FakeReporter()
    values = WellKnownValues(
        crypt4gh_public_keys={}, wps_api_url="w", ucs_api_url="u", dcs_api_url="d"
    )
    with ThreadPoolExecutor(max_workers=1) as executor:
        uploader = Uploader(
            accessor=FakeAccessor(UPLOAD_PACKAGE, EXISTING),
            ucs=ucs,
            storage=MemoryGhga(),
            values=values,
            keys=user_keys,
            reporter=reporter,
            executor=executor,
            part_size=16 * 1024 * 1024,
            concurrency=1,
            journals=None,
        )
        handler = TransferHandler(
            accessor=FakeAccessor(UPLOAD_PACKAGE, EXISTING),
            stager=FakeStager(),
            uploader=uploader,
            downloader=FakeDownloader(),
            reporter=reporter,
            max_parallel_files=1,
        )
        job = UploadJob(path=path, alias="init.bam", size=100)
        (outcome,) = await handler.upload([job])
    assert outcome.outcome is Outcome.FAILED
    assert len(ucs.creates) == 1
    assert ucs.creates[0]["overwrite"] is True
    assert ucs.creates[0]["alias"] == "init.bam"
    assert ucs.creates[0]["box_id"] == FUB
    assert any("replacing an unfinished upload" in text for _, text in reporter.messages)


# --- download -------------------------------------------------------------------------


async def test_download_plan(tmp_path: Path) -> None:
    handler = _handler(FakeAccessor(DOWNLOAD_PACKAGE))
    jobs = await handler.download_plan(tmp_path, accessions=None, decrypt=False)
    assert [(j.accession, j.target.name) for j in jobs] == [
        ("GHGAF001", "GHGAF001.bam.c4gh"),
        ("GHGAF002", "GHGAF002.vcf.gz.c4gh"),
        ("GHGAF003", "GHGAF003.c4gh"),
    ]
    assert all(j.target.parent == tmp_path for j in jobs)
    decrypted = await handler.download_plan(tmp_path, accessions=["GHGAF002"], decrypt=True)
    assert [(j.target.name, j.decrypt) for j in decrypted] == [("GHGAF002.vcf.gz", True)]


async def test_download_plan_rejects_unknown_accessions(tmp_path: Path) -> None:
    handler = _handler(FakeAccessor(DOWNLOAD_PACKAGE))
    with pytest.raises(UserInputError, match="GHGAF999") as info:
        await handler.download_plan(tmp_path, accessions=["GHGAF001", "GHGAF999"], decrypt=False)
    assert "GHGAF001" not in info.value.message


async def test_download_plan_with_upload_token(tmp_path: Path) -> None:
    handler = _handler(FakeAccessor(UPLOAD_PACKAGE))
    with pytest.raises(UserInputError, match="upload work package"):
        await handler.download_plan(tmp_path, accessions=None, decrypt=False)


UNSAFE_NAMES = [
    ("../x", ""),
    ("a/b", ""),
    ("..", ""),
    ("", ".bam"),
    ("GHGAF001", "/../../x"),
    ("GHGAF001", ".bam/x"),
    ("GHGAF001", "bam"),
    ("GHGAF001", ".."),
    ("a\\b", ""),
    (".hidden", ""),
    ("GHGAF001", ".bam\n"),  # a trailing newline passed re.match(...$)
    ("GHGAF001\n", ".bam"),
    ("GHGAF001", ".bam\n.c4gh"),
    ("GHGAF\x00001", ".bam"),
    ("GHGAF001", ".bam\x00"),
    ("G" * 300, ".bam"),  # 300 bytes
    ("G" * 128, ".a" * 4 + "." + "x" * 32 + "." + "y" * 32 + "." + "z" * 32),
]


async def test_download_plan_fails_only_files_with_unsafe_server_names(tmp_path: Path) -> None:
    files = {"GHGAF001": ".bam", "GHGAF002": ".bam\n", "..": "", "GHGAF003": "/x"}
    downloader, reporter = FakeDownloader(), FakeReporter()
    handler = _handler(
        FakeAccessor(WorkPackage(type="download", files=files)),
        downloader=downloader,
        reporter=reporter,
    )
    jobs = await handler.download_plan(tmp_path, accessions=None, decrypt=True)
    outcomes = await handler.download(jobs)
    by_outcome = {o.name: o.outcome for o in outcomes}
    assert by_outcome == {
        "..": Outcome.FAILED,
        "GHGAF001.bam": Outcome.DONE,
        "GHGAF002.bam\\n": Outcome.FAILED,
        "GHGAF003/x": Outcome.FAILED,
    }
    assert all("unsafe" in o.message for o in outcomes if o.outcome is Outcome.FAILED)
    assert [j.accession for j in downloader.jobs] == ["GHGAF001"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["GHGAF001.bam"]


async def test_listing_shows_unsafe_server_names_as_invalid() -> None:
    files = {"GHGAF001": ".bam", "GHGAF002": ".bam\n", "GHGAF003": "/x"}
    stager = FakeStager()
    rows = [
        r.as_row() for r in await _listing_handler(files, stager).download_listing(details=True)
    ]
    assert [r["file"] for r in rows] == ["GHGAF001.bam", None, None]
    assert [str(r["note"]).startswith("invalid: ") for r in rows] == [False, True, True]
    assert all("unsafe" in str(r["note"]) for r in rows[1:])
    assert stager.asked == ["GHGAF001"]  # an unsafe accession is never sent anywhere


@pytest.mark.parametrize(("accession", "extension"), UNSAFE_NAMES)
def test_safe_file_name_rejects(accession: str, extension: str) -> None:
    with pytest.raises(ServerResponseError) as info:
        safe_file_name(accession, extension)
    assert "\n" not in info.value.message and "\x00" not in info.value.message


@pytest.mark.parametrize(
    ("accession", "extension", "name"),
    [
        ("GHGAF001", ".bam", "GHGAF001.bam"),
        ("GHGAF001", ".vcf.gz", "GHGAF001.vcf.gz"),
        ("GHGAF001", "", "GHGAF001"),
    ],
)
def test_safe_file_name_accepts(accession: str, extension: str, name: str) -> None:
    assert safe_file_name(accession, extension) == name


async def test_existing_target_skipped_without_overwrite(tmp_path: Path) -> None:
    downloader, stager, reporter = FakeDownloader(), FakeStager(), FakeReporter()
    handler = _handler(
        FakeAccessor(DOWNLOAD_PACKAGE), downloader=downloader, stager=stager, reporter=reporter
    )
    jobs = await handler.download_plan(tmp_path, accessions=None, decrypt=False)
    jobs[0].target.write_bytes(b"old content")
    outcomes = await handler.download(jobs)
    assert [o.outcome for o in outcomes] == [Outcome.SKIPPED, Outcome.DONE, Outcome.DONE]
    assert outcomes[0].size == len(b"old content")
    assert jobs[0].target.read_bytes() == b"old content"
    assert sorted(j.accession for j in downloader.jobs) == ["GHGAF002", "GHGAF003"]
    assert "GHGAF001" not in stager.asked
    assert reporter.finished[0].outcome is Outcome.SKIPPED


async def test_symlinked_target_is_never_skipped(tmp_path: Path) -> None:
    # a link planted at the final name goes to the downloader, which refuses it clearly
    class Recording(FakeDownloader):
        async def download(self, job: DownloadJob, drs: DrsObject) -> FileOutcome:
            self.jobs.append(job)
            return FileOutcome(name=job.target.name, outcome=Outcome.FAILED, path=job.target)

    downloader = Recording()
    handler = _handler(FakeAccessor(DOWNLOAD_PACKAGE), downloader=downloader)
    jobs = await handler.download_plan(tmp_path, accessions=["GHGAF001"], decrypt=False)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    jobs[0].target.symlink_to(victim)
    for verify in (False, True):
        outcomes = await handler.download(jobs, verify=verify)
        assert [o.outcome for o in outcomes] == [Outcome.FAILED]
    assert [j.accession for j in downloader.jobs] == ["GHGAF001", "GHGAF001"]
    assert victim.read_bytes() == b"precious"


async def test_existing_target_replaced_with_overwrite(tmp_path: Path) -> None:
    downloader = FakeDownloader()
    handler = _handler(FakeAccessor(DOWNLOAD_PACKAGE), downloader=downloader)
    jobs = await handler.download_plan(tmp_path, accessions=["GHGAF001"], decrypt=False)
    jobs[0].target.write_bytes(b"old content")
    outcomes = await handler.download(jobs, overwrite=True)
    assert [o.outcome for o in outcomes] == [Outcome.DONE]
    assert jobs[0].target.read_bytes() == b"data"


async def test_download_dry_run(tmp_path: Path) -> None:
    downloader, stager = FakeDownloader(), FakeStager()
    handler = _handler(FakeAccessor(DOWNLOAD_PACKAGE), downloader=downloader, stager=stager)
    jobs = await handler.download_plan(tmp_path, accessions=None, decrypt=False)
    outcomes = await handler.download(jobs, dry_run=True)
    assert {o.outcome for o in outcomes} == {Outcome.PLANNED}
    assert downloader.jobs == []
    # asking for the size is also a staging request (contract §3.4(a))
    assert sorted(stager.asked) == ["GHGAF001", "GHGAF002", "GHGAF003"]
    assert all(o.size > 0 for o in outcomes)
    assert all(o.details["staged"] is True for o in outcomes)
    assert all("staged" in o.message for o in outcomes)
    assert list(tmp_path.iterdir()) == []


async def test_download_dry_run_file_being_staged(tmp_path: Path) -> None:
    stager = FakeStager(fail={"GHGAF002": StagingTimeoutError("not yet")})
    handler = _handler(FakeAccessor(DOWNLOAD_PACKAGE), stager=stager)
    jobs = await handler.download_plan(tmp_path, accessions=None, decrypt=False)
    outcomes = await handler.download(jobs, dry_run=True)
    assert outcomes[1].size == 0
    assert outcomes[1].details["staged"] is False
    assert "being staged" in outcomes[1].message
    assert outcomes[0].details["staged"] is True


async def test_upload_dry_run_reports_an_archived_box() -> None:
    uploader = FakeUploader()
    handler = _handler(FakeAccessor(UPLOAD_PACKAGE, EXISTING), uploader=uploader)
    with pytest.raises(UploadRejectedError, match="archived") as info:
        await handler.upload([_job("new.bam")], dry_run=True)
    assert info.value.exit_code == 1
    assert uploader.jobs == []


async def test_wrong_token_kind_uses_the_right_article() -> None:
    handler = _handler(FakeAccessor(DOWNLOAD_PACKAGE))
    with pytest.raises(UserInputError) as info:
        await handler.upload([_job("new.bam")])
    assert "for a download work package, not for uploads" in info.value.message
    assert "Use an upload access token" in info.value.hint
    handler = _handler(FakeAccessor(UPLOAD_PACKAGE))
    with pytest.raises(UserInputError) as info:
        await handler.download_plan(Path("."), accessions=None, decrypt=False)
    assert "for an upload work package, not for downloads" in info.value.message


async def test_failed_staging_does_not_stop_others(tmp_path: Path) -> None:
    downloader, reporter = FakeDownloader(), FakeReporter()
    stager = FakeStager(fail={"GHGAF002": StagingTimeoutError("GHGAF002 was not ready")})
    handler = _handler(
        FakeAccessor(DOWNLOAD_PACKAGE), downloader=downloader, stager=stager, reporter=reporter
    )
    jobs = await handler.download_plan(tmp_path, accessions=None, decrypt=False)
    outcomes = await handler.download(jobs)
    assert [o.outcome for o in outcomes] == [Outcome.DONE, Outcome.FAILED, Outcome.DONE]
    assert "not ready" in outcomes[1].message
    assert outcomes[1].details["accession"] == "GHGAF002"
    assert sorted(j.accession for j in downloader.jobs) == ["GHGAF001", "GHGAF003"]
    assert [o.outcome for o in reporter.finished] == [Outcome.FAILED]


def _listing_handler(files: dict[str, str], stager: FakeStager) -> TransferHandler:
    return TransferHandler(
        accessor=FakeAccessor(package=WorkPackage(type="download", files=files)),
        stager=stager,
        uploader=FakeUploader(),
        downloader=FakeDownloader(),
        reporter=FakeReporter(),
        max_parallel_files=2,
    )


async def test_plain_download_listing_asks_the_download_service_nothing() -> None:
    """At GHGA each DRS request stages the file and counts as a download served."""
    stager = FakeStager()
    files = {f"GHGAF{i:04d}": ".bam" for i in range(1000)}
    rows = [r.as_row() for r in await _listing_handler(files, stager).listing()]
    assert stager.asked == []
    assert len(rows) == 1000
    assert rows[0] == {"accession": "GHGAF0000", "file": "GHGAF0000.bam", "note": None}


async def test_download_listing_with_details_reports_size_checksum_and_staging() -> None:
    stager = FakeStager(fail={"GHGAF2": RuntimeError("unused")})
    handler = _listing_handler({"GHGAF1": ".bam", "GHGAF2": ".vcf.gz"}, stager)
    rows = [r.as_row() for r in await handler.download_listing(details=True)]
    assert rows == [
        {
            "accession": "GHGAF1",
            "file": "GHGAF1.bam",
            "size": 1,
            "sha256": "ab" * 32,
            "staged": True,
            "note": None,
        },
        {
            "accession": "GHGAF2",
            "file": "GHGAF2.vcf.gz",
            "size": None,
            "sha256": None,
            "staged": False,
            "note": None,
        },
    ]
    assert stager.asked == ["GHGAF1"]


async def test_same_alias_with_a_different_size_fails_instead_of_skipping() -> None:
    """A pipeline must never take the box's file for its own: only an identical size skips."""
    in_box = UploadListItem(
        id="id-a",
        alias="a.bam",
        state=FileUploadState.INBOX,
        decrypted_size=4_230_802,
        encrypted_size=4_232_734,
    )
    same = _item("b.bam", "inbox", "id-b")
    uploader = FakeUploader()
    handler = _handler(FakeAccessor(UPLOAD_PACKAGE, [in_box, same]), uploader=uploader)
    a = UploadJob(path=Path("/data/a.bam"), alias="a.bam", size=1_000_000)
    outcomes = await handler.upload([a, _job("b.bam")])
    assert [o.outcome for o in outcomes] == [Outcome.FAILED, Outcome.SKIPPED]
    assert outcomes[0].message.startswith(
        "a different file named a.bam is already in the upload box"
    )
    assert "use --overwrite to replace it" in outcomes[0].message
    assert (outcomes[0].name, outcomes[0].size, outcomes[0].path) == ("a.bam", 1_000_000, a.path)
    assert outcomes[0].details == {
        "file_id": "id-a",
        "state": "inbox",
        "encrypted_size": 4_232_734,
    }
    assert (outcomes[1].name, outcomes[1].size, outcomes[1].path) == (
        "b.bam",
        10,
        DATA / "b.bam",
    )
    assert outcomes[1].details["file_id"] == "id-b"
    assert uploader.jobs == []
    replaced = await handler.upload([UploadJob(Path("/data/a.bam"), "a.bam", 1_000_000, True)])
    assert replaced[0].outcome is Outcome.DONE

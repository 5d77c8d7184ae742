"""core/download.py: verification outcomes, the envelope check, safe output files.

The downloader runs against in-memory fakes of the DCS and S3 that serve a real
Crypt4GH body, so every check sees real ciphertext.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from crypt4gh import header as c4gh_header
from tests.fakes import MemoryGhga
from tests.unit.connector.test_conn_handler import DOWNLOAD_PACKAGE, FakeAccessor, FakeReporter

from ghga_connector.c4gh.envelope import (
    MalformedEnvelopeError,
    check_envelope_shape,
    make_envelope,
    new_data_secret,
)
from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.c4gh.segments import SegmentCipher
from ghga_connector.core import download as download_module
from ghga_connector.core.decrypt import decrypt_file, plaintext_sha256, vouched_checksum
from ghga_connector.core.download import Downloader
from ghga_connector.core.ports import DownloadJob, FileStagerBase
from ghga_connector.models import DrsObject, Outcome

SEG = 65536
CSEG = SEG + 28
PLAIN = os.urandom(5 * SEG + 777)


def encrypt_body(secret: bytes, plain: bytes) -> bytes:
    cipher = SegmentCipher(secret)
    out = bytearray()
    for index, start in enumerate(range(0, len(plain), SEG)):
        chunk = plain[start : start + SEG]
        buffer = bytearray(len(chunk) + 28)
        cipher.encrypt_segment_into(index, memoryview(chunk), memoryview(buffer))
        out += buffer
    return bytes(out)


class Archive:
    """One archived file: its secret, body, envelope for the user, DRS checksum."""

    def __init__(self, keys: KeyPair, plain: bytes = PLAIN) -> None:
        self.secret = new_data_secret()
        self.body = encrypt_body(self.secret, plain)
        self.envelope = make_envelope(self.secret, keys.secret, keys.public)
        self.sha256: str | None = hashlib.sha256(plain).hexdigest()
        self.range_requests = 0

    def swap_segments(self, first: int, second: int) -> None:
        segments = [self.body[i : i + CSEG] for i in range(0, len(self.body), CSEG)]
        segments[first], segments[second] = segments[second], segments[first]
        self.body = b"".join(segments)


class FakeDcs(MemoryGhga):
    def __init__(self, archive: Archive) -> None:
        super().__init__()
        self.archive = archive

    async def get_envelope(self, accession: str, token: object) -> bytes:
        return self.archive.envelope


class FakeStorage(MemoryGhga):
    def __init__(self, archive: Archive) -> None:
        super().__init__()
        self.archive = archive

    async def get_range(self, url: str, start: int, stop: int, into: memoryview) -> None:
        self.archive.range_requests += 1
        into[: stop - start] = self.archive.body[start:stop]


class ArchiveStager(FileStagerBase):
    def __init__(self, archive: Archive) -> None:
        self.archive = archive

    async def staged_object(self, accession: str, *, force_new: bool = False) -> DrsObject:
        return DrsObject(
            accession=accession,
            download_url="http://s3/outbox/x?X-Amz-Signature=secret",
            size=len(self.archive.body),
            sha256=self.archive.sha256,
        )

    async def probe(self, accession: str) -> DrsObject | None:
        return await self.staged_object(accession)


def run_download(
    archive: Archive, keys: KeyPair, target: Path, *, decrypt: bool = False
) -> tuple[Outcome, dict[str, object], str, FakeReporter]:
    reporter = FakeReporter()
    stager = ArchiveStager(archive)

    async def go():  # type: ignore[no-untyped-def]
        with ThreadPoolExecutor(max_workers=2) as executor:
            downloader = Downloader(
                accessor=FakeAccessor(DOWNLOAD_PACKAGE),
                dcs=FakeDcs(archive),
                storage=FakeStorage(archive),
                stager=stager,
                keys=keys,
                reporter=reporter,
                executor=executor,
                part_size=2 * CSEG,
                concurrency=2,
            )
            job = DownloadJob("GHGAF001", ".bam", target, decrypt)
            return await downloader.download(job, await stager.staged_object("GHGAF001"))

    outcome = asyncio.run(go())
    return outcome.outcome, outcome.details, outcome.message, reporter


# --- verified or loudly not (items 5 and 8) --------------------------------------------


def test_verified_download_writes_plaintext_named_sidecar(
    tmp_path: Path, user_keys: KeyPair
) -> None:
    archive = Archive(user_keys)
    target = tmp_path / "GHGAF001.bam.c4gh"
    outcome, details, _, _ = run_download(archive, user_keys, target)
    assert outcome is Outcome.DONE
    assert details["verified"] is True
    sidecar = tmp_path / "GHGAF001.bam.sha256"
    assert sidecar.read_text().splitlines()[0] == f"{archive.sha256}  GHGAF001.bam"
    assert vouched_checksum(target) == archive.sha256
    assert not (tmp_path / "GHGAF001.bam.c4gh.sha256").exists()
    assert plaintext_sha256(target, user_keys.secret) == archive.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "GHGAF001.bam.c4gh",
        "GHGAF001.bam.sha256",
    ]
    # the sidecar is a sha256sum line for the decrypted file
    decrypt_file(target, tmp_path / "GHGAF001.bam", user_keys.secret)
    assert hashlib.sha256((tmp_path / "GHGAF001.bam").read_bytes()).hexdigest() == archive.sha256


def test_old_sidecar_name_is_replaced(tmp_path: Path, user_keys: KeyPair) -> None:
    archive = Archive(user_keys)
    (tmp_path / "GHGAF001.bam.c4gh.sha256").write_text("0" * 64 + "  GHGAF001.bam\n")
    outcome, _, _, _ = run_download(archive, user_keys, tmp_path / "GHGAF001.bam.c4gh")
    assert outcome is Outcome.DONE
    assert not (tmp_path / "GHGAF001.bam.c4gh.sha256").exists()


def test_without_checksum_the_outcome_is_unverified(tmp_path: Path, user_keys: KeyPair) -> None:
    archive = Archive(user_keys)
    archive.sha256 = None
    (tmp_path / "GHGAF001.bam.sha256").write_text("0" * 64 + "  GHGAF001.bam\n")  # stale
    target = tmp_path / "GHGAF001.bam.c4gh"
    outcome, details, message, reporter = run_download(archive, user_keys, target)
    assert outcome is Outcome.UNVERIFIED
    assert details["verified"] is False
    assert "not verified" in message
    assert any(level == "warning" and "GHGAF001" in text for level, text in reporter.messages)
    # never under the final name: kept as X.unverified
    assert not target.exists()
    assert (tmp_path / "GHGAF001.bam.c4gh.unverified").exists()
    assert "kept as GHGAF001.bam.c4gh.unverified" in message
    # no checksum file may vouch for content nobody verified
    assert not (tmp_path / "GHGAF001.bam.sha256").exists()


@pytest.mark.parametrize("decrypt", [False, True], ids=["encrypted", "decrypted"])
def test_swapped_segments_are_never_done(tmp_path: Path, user_keys: KeyPair, decrypt: bool) -> None:
    # Crypt4GH authenticates segments, not their order: only the checksum sees a swap.
    archive = Archive(user_keys)
    archive.swap_segments(1, 2)
    target = tmp_path / ("GHGAF001.bam" if decrypt else "GHGAF001.bam.c4gh")
    outcome, _, message, _ = run_download(archive, user_keys, target, decrypt=decrypt)
    assert outcome is Outcome.FAILED
    assert "does not match" in message
    assert list(tmp_path.iterdir()) == []

    archive.sha256 = None
    outcome, details, _, _ = run_download(archive, user_keys, target, decrypt=decrypt)
    assert outcome is Outcome.UNVERIFIED
    assert details["verified"] is False


def test_sidecar_is_in_place_before_the_data_file_is_renamed(
    tmp_path: Path, user_keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = Archive(user_keys)
    target = tmp_path / "GHGAF001.bam.c4gh"
    seen: list[tuple[bool, str]] = []
    real_replace = download_module.replace_file

    def spy(source: Path, final: Path) -> None:
        sidecar = tmp_path / "GHGAF001.bam.sha256"
        seen.append((final == target, sidecar.read_text() if sidecar.exists() else ""))
        real_replace(source, final)

    monkeypatch.setattr(download_module, "replace_file", spy)
    outcome, _, _, _ = run_download(archive, user_keys, target)
    assert outcome is Outcome.DONE
    assert [(final, text.splitlines()[0]) for final, text in seen] == [
        (True, f"{archive.sha256}  GHGAF001.bam")
    ]


# --- the envelope (item 7) --------------------------------------------------------------


def _two_packet_envelope(keys: KeyPair, secret: bytes, other: KeyPair) -> bytes:
    packet = c4gh_header.make_packet_data_enc(0, secret)
    packets = c4gh_header.encrypt(
        packet, [(0, keys.secret, keys.public), (0, keys.secret, other.public)]
    )
    return bytes(c4gh_header.serialize(packets))


def test_envelope_shape(user_keys: KeyPair, other_keys: KeyPair) -> None:
    secret = new_data_secret()
    good = make_envelope(secret, user_keys.secret, user_keys.public)
    check_envelope_shape(good)
    for bad, reason in [
        (_two_packet_envelope(user_keys, secret, other_keys), "2 header packets"),
        (good + b"\0", "125 bytes"),
        (good[:-1], "123 bytes"),
        (b"crypt4gX" + good[8:], "not a Crypt4GH header"),
        (good[:8] + (2).to_bytes(4, "little") + good[12:], "version 2"),
        (good[:16] + (107).to_bytes(4, "little") + good[20:], "packet of 107 bytes"),
        (b"", "0 bytes"),
    ]:
        with pytest.raises(MalformedEnvelopeError, match=reason):
            check_envelope_shape(bad)


def test_two_packet_envelope_fails_before_any_data(
    tmp_path: Path, user_keys: KeyPair, other_keys: KeyPair
) -> None:
    archive = Archive(user_keys)
    archive.envelope = _two_packet_envelope(user_keys, archive.secret, other_keys)
    outcome, _, message, _ = run_download(archive, user_keys, tmp_path / "GHGAF001.bam.c4gh")
    assert outcome is Outcome.FAILED
    assert "malformed Crypt4GH envelope" in message and "2 header packets" in message
    assert archive.range_requests == 0
    assert list(tmp_path.iterdir()) == []


# --- output files: no symlink followed, private modes (item 9) ---------------------------


@pytest.mark.parametrize(
    "planted",
    [
        "GHGAF001.bam.c4gh",
        "GHGAF001.bam.c4gh.part",
        "GHGAF001.bam.c4gh.part.json",
        "GHGAF001.bam.sha256",
    ],
)
def test_planted_symlink_is_refused(tmp_path: Path, user_keys: KeyPair, planted: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (out / planted).symlink_to(victim)
    archive = Archive(user_keys)
    outcome, _, message, _ = run_download(archive, user_keys, out / "GHGAF001.bam.c4gh")
    assert outcome is Outcome.FAILED
    assert "symbolic link" in message and planted in message
    assert victim.read_bytes() == b"precious"
    assert archive.range_requests == 0


@pytest.mark.parametrize("planted", ["GHGAF001.bam", "GHGAF001.bam.part"])
def test_planted_symlink_is_refused_when_decrypting(
    tmp_path: Path, user_keys: KeyPair, planted: str
) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / planted).symlink_to(victim)
    outcome, _, message, _ = run_download(
        Archive(user_keys), user_keys, out / "GHGAF001.bam", decrypt=True
    )
    assert outcome is Outcome.FAILED
    assert "symbolic link" in message
    assert victim.read_bytes() == b"precious"


@pytest.mark.parametrize("decrypt", [False, True], ids=["encrypted", "decrypted"])
def test_outputs_are_created_private(tmp_path: Path, user_keys: KeyPair, decrypt: bool) -> None:
    target = tmp_path / ("GHGAF001.bam" if decrypt else "GHGAF001.bam.c4gh")
    old = os.umask(0o022)
    try:
        outcome, _, _, _ = run_download(Archive(user_keys), user_keys, target, decrypt=decrypt)
    finally:
        os.umask(old)
    assert outcome is Outcome.DONE
    assert target.stat().st_mode & 0o777 == 0o600


def test_part_file_and_journal_are_private(
    tmp_path: Path, user_keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes: dict[str, int] = {}
    real_check = download_module._check_and_write

    def spy(*args):  # type: ignore[no-untyped-def]
        for path in tmp_path.iterdir():
            modes[path.name] = path.stat().st_mode & 0o777
        return real_check(*args)

    monkeypatch.setattr(download_module, "_check_and_write", spy)
    old = os.umask(0o000)
    try:
        run_download(Archive(user_keys), user_keys, tmp_path / "GHGAF001.bam", decrypt=True)
    finally:
        os.umask(old)
    assert modes == {"GHGAF001.bam.part": 0o600, "GHGAF001.bam.part.json": 0o600}


def test_interrupted_download_says_how_to_continue(tmp_path: Path, user_keys: KeyPair) -> None:
    archive = Archive(user_keys)
    reporter = FakeReporter()

    blocked = asyncio.Event()

    class StoppingStorage(FakeStorage):
        async def get_range(self, url: str, start: int, stop: int, into: memoryview) -> None:
            if start > 0:  # the user presses Ctrl-C while the second range is in flight
                blocked.set()
                await asyncio.Event().wait()
            await super().get_range(url, start, stop, into)

    async def go() -> None:
        stager = ArchiveStager(archive)
        with ThreadPoolExecutor(max_workers=1) as executor:
            downloader = Downloader(
                accessor=FakeAccessor(DOWNLOAD_PACKAGE),
                dcs=FakeDcs(archive),
                storage=StoppingStorage(archive),
                stager=stager,
                keys=user_keys,
                reporter=reporter,
                executor=executor,
                part_size=2 * CSEG,
                concurrency=1,
            )
            job = DownloadJob("GHGAF001", ".bam", tmp_path / "GHGAF001.bam.c4gh", False)
            drs = await stager.staged_object("GHGAF001")
            task = asyncio.create_task(downloader.download(job, drs))
            await blocked.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(go())
    assert (
        "warning",
        "GHGAF001.bam.c4gh: download paused; run the same command again to continue.",
    ) in reporter.messages
    assert (tmp_path / "GHGAF001.bam.c4gh.part").exists()


def test_everything_is_fsynced_before_it_gets_its_final_name(
    tmp_path: Path, user_keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ghga_connector.core import files as files_module

    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, files_module.replace_file

    def fsync(fd: int) -> None:
        events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}")).name))
        real_fsync(fd)

    def replace(source: Path, target: Path) -> None:
        events.append(("rename", f"{source.name} -> {target.name}"))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(files_module, "replace_file", replace)
    monkeypatch.setattr(download_module, "replace_file", replace)
    outcome, _, _, _ = run_download(Archive(user_keys), user_keys, tmp_path / "GHGAF001.bam.c4gh")
    assert outcome is Outcome.DONE
    renames = [what for kind, what in events if kind == "rename"]
    journal_temp, sidecar_temp = renames[0].split(" -> ")[0], renames[1].split(" -> ")[0]
    assert renames == [
        f"{journal_temp} -> GHGAF001.bam.c4gh.part.json",
        f"{sidecar_temp} -> GHGAF001.bam.sha256",
        "GHGAF001.bam.c4gh.part -> GHGAF001.bam.c4gh",
    ]
    for temp, final in ((journal_temp, renames[0]), (sidecar_temp, renames[1])):
        assert events.index(("fsync", temp)) < events.index(("rename", final))
    assert events.index(("fsync", "GHGAF001.bam.c4gh.part")) < events.index(("rename", renames[2]))
    assert events.index(("rename", renames[1])) < events.index(("rename", renames[2]))


_SIGNED = "https://s3.example/outbox/x?X-Amz-Signature=topsecret"


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("size", {"size": _SIGNED}),
        ("checksum", {"checksums": [{"type": "sha-256", "checksum": 12345}]}),
        ("url", {"access_methods": [{"type": "s3", "access_url": {"url": 42}}]}),
    ],
)
def test_one_malformed_drs_object_fails_only_that_file(
    tmp_path: Path, field: str, change: dict[str, object]
) -> None:
    import httpx
    from tests.unit.connector.test_conn_handler import FakeDownloader, FakeUploader

    from ghga_connector.adapters.services import DcsClient
    from ghga_connector.core.download import FileStager
    from ghga_connector.core.handler import TransferHandler

    url = _SIGNED

    def dcs(request: httpx.Request) -> httpx.Response:
        accession = request.url.path.rsplit("/", 1)[-1]
        body = {
            "access_methods": [{"type": "s3", "access_url": {"url": url}}],
            "checksums": [{"type": "sha-256", "checksum": "ab" * 32}],
            "size": 29,
        }
        if accession == "GHGAF002":
            body.update(change)  # one malformed field, possibly holding a presigned URL
        return httpx.Response(200, json=body)

    async def go() -> list[tuple[str, Outcome, str]]:
        reporter = FakeReporter()
        async with httpx.AsyncClient(transport=httpx.MockTransport(dcs)) as client:
            accessor = FakeAccessor(DOWNLOAD_PACKAGE)
            stager = FileStager(
                accessor=accessor,
                dcs=DcsClient(client, "https://dcs.example"),
                reporter=reporter,
                max_wait_time=10,
            )
            handler = TransferHandler(
                accessor=accessor,
                stager=stager,
                uploader=FakeUploader(),
                downloader=FakeDownloader(),
                reporter=reporter,
                max_parallel_files=2,
            )
            jobs = await handler.download_plan(tmp_path, accessions=None, decrypt=True)
            outcomes = await handler.download(jobs)
        return [(o.name, o.outcome, o.message) for o in outcomes]

    results = asyncio.run(go())
    assert [(name, outcome) for name, outcome, _ in results] == [
        ("GHGAF001.bam", Outcome.DONE),
        ("GHGAF002.vcf.gz", Outcome.FAILED),
        ("GHGAF003", Outcome.DONE),
    ]
    message = results[1][2]
    assert "GHGAF002" in message and field in message
    assert "topsecret" not in message and "s3.example" not in message


@pytest.mark.parametrize("sidecar", ["GHGAF001.bam.sha256", "GHGAF001.bam.c4gh.sha256"])
def test_verify_existing_reads_new_and_old_sidecar_names(
    tmp_path: Path, user_keys: KeyPair, sidecar: str
) -> None:
    archive = Archive(user_keys)
    target = tmp_path / "GHGAF001.bam.c4gh"
    assert run_download(archive, user_keys, target)[0] is Outcome.DONE
    written = (tmp_path / "GHGAF001.bam.sha256").read_text()
    (tmp_path / "GHGAF001.bam.sha256").unlink()
    (tmp_path / sidecar).write_text(written)

    async def verify() -> bool | None:
        with ThreadPoolExecutor(max_workers=1) as executor:
            downloader = Downloader(
                accessor=FakeAccessor(DOWNLOAD_PACKAGE),
                dcs=FakeDcs(archive),
                storage=FakeStorage(archive),
                stager=ArchiveStager(archive),
                keys=user_keys,
                reporter=FakeReporter(),
                executor=executor,
                part_size=2 * CSEG,
                concurrency=1,
            )
            return await downloader.verify_existing(DownloadJob("GHGAF001", ".bam", target, False))

    assert asyncio.run(verify()) is True
    # a file that passed is vouched for in the (new-name) sidecar
    assert vouched_checksum(target) == archive.sha256
    for name in {sidecar, "GHGAF001.bam.sha256"}:
        (tmp_path / name).write_text("0" * 64 + "  GHGAF001.bam\n")
    assert asyncio.run(verify()) is False
    for name in {sidecar, "GHGAF001.bam.sha256"}:
        (tmp_path / name).unlink()
    # no sidecar: compared with the DRS checksum
    assert asyncio.run(verify()) is True
    archive.sha256 = None
    for name in {sidecar, "GHGAF001.bam.sha256"}:
        (tmp_path / name).unlink(missing_ok=True)
    assert asyncio.run(verify()) is None  # nothing to verify against


# --- resuming only into the user's own private .part file -------------------------------


def _partial_download(tmp_path: Path, keys: KeyPair, archive: Archive) -> tuple[Path, Path]:
    """A ``.part`` file and its range journal as an interrupted run leaves them."""
    target = tmp_path / "GHGAF001.bam"
    part = tmp_path / "GHGAF001.bam.part"
    journal = tmp_path / "GHGAF001.bam.part.json"
    header = {
        "accession": "GHGAF001",
        "size": len(archive.body),
        "sha256": archive.sha256,
        "range_size": download_module.download_range_size(2 * CSEG),
        "decrypt": True,
    }
    for path, data in ((part, bytes(len(PLAIN))), (journal, json.dumps(header) + "\n")):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data if isinstance(data, bytes) else data.encode())
        os.close(fd)
    return target, part


def test_resume_continues_the_users_own_part_file(tmp_path: Path, user_keys: KeyPair) -> None:
    archive = Archive(user_keys)
    target, _ = _partial_download(tmp_path, user_keys, archive)
    outcome, _, message, reporter = run_download(archive, user_keys, target, decrypt=True)
    assert outcome is Outcome.DONE, message
    assert any("continuing a partial download" in text for _, text in reporter.messages)
    assert target.read_bytes() == PLAIN


@pytest.mark.parametrize("planted", ["GHGAF001.bam.part", "GHGAF001.bam.part.json"])
@pytest.mark.parametrize("how", ["other owner", "readable by others", "hard link"])
def test_resume_refuses_a_part_file_someone_else_placed(
    tmp_path: Path, user_keys: KeyPair, planted: str, how: str
) -> None:
    """In a shared output folder another user could receive the plaintext otherwise."""
    if how == "other owner" and os.geteuid() != 0:
        pytest.skip("only root can give a file to another user")
    archive = Archive(user_keys)
    target, part = _partial_download(tmp_path, user_keys, archive)
    foreign = tmp_path / planted
    if how == "other owner":
        os.chown(foreign, 4242, 4242)
    elif how == "readable by others":
        foreign.chmod(0o644)
    else:
        os.link(foreign, tmp_path / "elsewhere")
    outcome, _, message, _ = run_download(archive, user_keys, target, decrypt=True)
    assert outcome is Outcome.FAILED
    assert "Refusing to continue" in message and planted in message
    assert part.read_bytes() == bytes(len(PLAIN))  # nothing written into it
    assert archive.range_requests == 0
    assert not target.exists()


# --- a link planted after the upfront check (O_NOFOLLOW, O_EXCL) --------------------------


def _plant_after_check(monkeypatch: pytest.MonkeyPatch, plant: Callable[[], None]) -> None:
    """Run ``plant`` right after the downloader's upfront link check (a race, made certain)."""
    real = download_module.refuse_links
    planted: list[bool] = []

    def check_then_plant(*paths: Path) -> None:
        real(*paths)
        if not planted:
            planted.append(True)
            plant()

    monkeypatch.setattr(download_module, "refuse_links", check_then_plant)


@pytest.mark.posix_only  # symbolic links
def test_a_link_planted_at_the_part_file_after_the_check_is_not_written_through(
    tmp_path: Path, user_keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails if the ``.part`` file is created following links (O_EXCL and O_NOFOLLOW)."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    _plant_after_check(monkeypatch, lambda: (out / "GHGAF001.bam.part").symlink_to(victim))
    outcome, _, message, _ = run_download(
        Archive(user_keys), user_keys, out / "GHGAF001.bam", decrypt=True
    )
    assert outcome is Outcome.FAILED
    assert "symbolic link" in message
    assert victim.read_bytes() == b"precious"


def test_a_hard_link_planted_at_the_part_file_after_the_check_is_not_written_through(
    tmp_path: Path, user_keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails without O_EXCL: the planted name is replaced, never opened and written."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    _plant_after_check(monkeypatch, lambda: os.link(victim, out / "GHGAF001.bam.part"))
    outcome, _, _, _ = run_download(
        Archive(user_keys), user_keys, out / "GHGAF001.bam", decrypt=True
    )
    assert outcome is Outcome.DONE
    assert (out / "GHGAF001.bam").read_bytes() == PLAIN
    assert victim.read_bytes() == b"precious"


def _interrupted_download(tmp_path: Path, user_keys: KeyPair, archive: Archive) -> Path:
    """Leave ``GHGAF001.bam.c4gh.part`` and its journal with the first range written."""
    blocked = asyncio.Event()

    class StoppingStorage(FakeStorage):
        async def get_range(self, url: str, start: int, stop: int, into: memoryview) -> None:
            if start > 0:
                blocked.set()
                await asyncio.Event().wait()
            await super().get_range(url, start, stop, into)

    async def go() -> None:
        stager = ArchiveStager(archive)
        with ThreadPoolExecutor(max_workers=1) as executor:
            downloader = Downloader(
                accessor=FakeAccessor(DOWNLOAD_PACKAGE),
                dcs=FakeDcs(archive),
                storage=StoppingStorage(archive),
                stager=stager,
                keys=user_keys,
                reporter=FakeReporter(),
                executor=executor,
                part_size=2 * CSEG,
                concurrency=1,
            )
            job = DownloadJob("GHGAF001", ".bam", tmp_path / "GHGAF001.bam.c4gh", False)
            task = asyncio.create_task(
                downloader.download(job, await stager.staged_object("GHGAF001"))
            )
            await blocked.wait()  # the first range is written, the second in flight
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(go())
    part = tmp_path / "GHGAF001.bam.c4gh.part"
    assert part.exists() and (tmp_path / "GHGAF001.bam.c4gh.part.json").exists()
    return part


@pytest.mark.posix_only  # symbolic links
def test_a_link_planted_at_a_resumed_part_file_is_not_written_through(
    tmp_path: Path, user_keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails without O_NOFOLLOW on the re-opened ``.part`` file of a resumed download."""
    archive = Archive(user_keys)
    part = _interrupted_download(tmp_path, user_keys, archive)
    victim = tmp_path / "victim"
    victim.write_bytes(part.read_bytes())  # as large as the .part file

    def plant() -> None:
        part.unlink()
        part.symlink_to(victim)

    before = victim.read_bytes()
    _plant_after_check(monkeypatch, plant)
    outcome, _, message, _ = run_download(archive, user_keys, tmp_path / "GHGAF001.bam.c4gh")
    assert outcome is Outcome.FAILED
    assert "symbolic link" in message
    assert victim.read_bytes() == before


def test_a_resumed_encrypted_download_authenticates_the_present_ranges_again(
    tmp_path: Path, user_keys: KeyPair
) -> None:
    """A byte of a range already in the ``.part`` file changed meanwhile: fetched again."""
    archive = Archive(user_keys)
    part = _interrupted_download(tmp_path, user_keys, archive)
    journal = (tmp_path / "GHGAF001.bam.c4gh.part.json").read_text().splitlines()
    assert "1" in journal[1:], "the first range must be present for the test to mean anything"
    with part.open("r+b") as handle:  # flip one ciphertext byte of the present first range
        handle.seek(124 + 10)
        byte = handle.read(1)
        handle.seek(124 + 10)
        handle.write(bytes([byte[0] ^ 0x01]))
    before = archive.range_requests
    outcome, _, message, _ = run_download(archive, user_keys, tmp_path / "GHGAF001.bam.c4gh")
    assert outcome is Outcome.DONE, message
    encrypted = (tmp_path / "GHGAF001.bam.c4gh").read_bytes()
    assert encrypted[124:] == archive.body  # the tampered range was replaced
    ranges = -(-len(archive.body) // (2 * CSEG))
    assert archive.range_requests - before == ranges  # the present one again, plus the rest

"""core/decrypt.py: offline decryption with checksum verification and atomic output."""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from unittest.mock import patch

import pytest
from crypt4gh import header as c4gh_header
from crypt4gh import lib as c4gh_lib

from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.core.decrypt import (
    VOUCH_PREFIX,
    decrypt_batch,
    decrypt_file,
    decrypt_sources,
    expected_checksum,
    legacy_sidecar_path,
    sidecar_path,
    vouch_for,
    vouched_checksum,
)
from ghga_connector.core.download import checksum_line
from ghga_connector.core.ports import ProgressReporter
from ghga_connector.errors import InputFileError, IntegrityError, KeyFileError, OutputError
from ghga_connector.models import FileOutcome, Outcome

PLAIN_SIZE = 3 * 65536 + 1234


@pytest.fixture
def plaintext() -> bytes:
    return os.urandom(PLAIN_SIZE)


def _encrypt(folder: Path, plain: bytes, keys: KeyPair, name: str = "GHGAF001.bam") -> Path:
    out = io.BytesIO()
    c4gh_lib.encrypt([(0, keys.secret, keys.public)], io.BytesIO(plain), out)
    source = folder / f"{name}.c4gh"
    source.write_bytes(out.getvalue())
    return source


def _sidecar(source: Path, sha256: str, *, legacy: bool = False) -> Path:
    sidecar = legacy_sidecar_path(source) if legacy else sidecar_path(source)
    sidecar.write_text(checksum_line(sha256, source.name.removesuffix(".c4gh")))
    return sidecar


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith((".c4gh", ".sha256")))


def test_decrypt_verified(tmp_path: Path, user_keys: KeyPair, plaintext: bytes) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    sha256 = hashlib.sha256(plaintext).hexdigest()
    _sidecar(source, sha256)
    target = tmp_path / "GHGAF001.bam"
    before = time.monotonic()
    outcome = decrypt_file(source, target, user_keys.secret)
    assert 0 <= outcome.seconds <= time.monotonic() - before
    assert outcome.outcome is Outcome.DONE
    assert outcome.message == ""
    assert target.read_bytes() == plaintext
    assert outcome.size == PLAIN_SIZE
    assert outcome.details == {"sha256": sha256, "verified": True}
    assert _leftovers(tmp_path) == ["GHGAF001.bam"]


def test_decrypt_without_sidecar(tmp_path: Path, user_keys: KeyPair, plaintext: bytes) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    target = tmp_path / "out.bam"
    outcome = decrypt_file(source, target, user_keys.secret)
    # never under the final name without a checksum: kept as out.bam.unverified
    assert not target.exists()
    assert outcome.path == tmp_path / "out.bam.unverified"
    assert outcome.path.read_bytes() == plaintext
    assert outcome.outcome is Outcome.UNVERIFIED
    assert outcome.details["verified"] is False
    assert "GHGAF001.bam.sha256" in outcome.message
    assert "kept as out.bam.unverified" in outcome.message
    # the same command again: unverified again (not "skipped")
    assert decrypt_file(source, target, user_keys.secret).outcome is Outcome.UNVERIFIED
    assert not target.exists()
    # --allow-unverified gives it the final name (still unverified) and drops the marker file
    outcome = decrypt_file(source, target, user_keys.secret, allow_unverified=True)
    assert outcome.outcome is Outcome.UNVERIFIED
    assert target.read_bytes() == plaintext
    assert not (tmp_path / "out.bam.unverified").exists()
    assert outcome.message.endswith("to check the content against")


def test_sidecar_is_named_for_the_plaintext(tmp_path: Path) -> None:
    assert sidecar_path(tmp_path / "X.bam.c4gh") == tmp_path / "X.bam.sha256"
    assert legacy_sidecar_path(tmp_path / "X.bam.c4gh") == tmp_path / "X.bam.c4gh.sha256"


def test_legacy_sidecar_name_is_read(tmp_path: Path, user_keys: KeyPair, plaintext: bytes) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    _sidecar(source, hashlib.sha256(plaintext).hexdigest(), legacy=True)
    outcome = decrypt_file(source, tmp_path / "GHGAF001.bam", user_keys.secret)
    assert outcome.outcome is Outcome.DONE
    assert outcome.details["verified"] is True


def test_new_sidecar_name_wins_over_legacy(tmp_path: Path, user_keys: KeyPair) -> None:
    source = tmp_path / "X.bam.c4gh"
    _sidecar(source, "a" * 64)
    _sidecar(source, "b" * 64, legacy=True)
    assert expected_checksum(source) == "a" * 64


def test_sidecar_with_comment_line(tmp_path: Path) -> None:
    source = tmp_path / "X.bam.c4gh"
    sidecar_path(source).write_text(f"# plaintext SHA-256\n{'c' * 64}  X.bam\n")
    assert expected_checksum(source) == "c" * 64


def test_garbage_sidecar_is_an_error(tmp_path: Path) -> None:
    source = tmp_path / "X.bam.c4gh"
    sidecar_path(source).write_text("not a checksum\n")
    with pytest.raises(IntegrityError, match=r"X\.bam\.sha256") as error:
        expected_checksum(source)
    assert "--overwrite" in (error.value.hint or "")
    # nothing but comments: the same error, not a crash
    sidecar_path(source).write_text("# only a comment\n\n")
    with pytest.raises(IntegrityError, match=r"X\.bam\.sha256"):
        expected_checksum(source)


def _segments_cut(source: Path, keep: int) -> None:
    """Keep the 124-byte header and the first ``keep`` whole segments."""
    source.write_bytes(source.read_bytes()[: 124 + keep * 65564])


def test_cut_at_segment_boundary_without_sidecar_is_unverified(
    tmp_path: Path, user_keys: KeyPair, plaintext: bytes
) -> None:
    # Crypt4GH authenticates each segment, not the file: a cut at a segment boundary
    # decrypts cleanly, so without a checksum the result must not be called done.
    source = _encrypt(tmp_path, plaintext, user_keys)
    _segments_cut(source, 2)
    target = tmp_path / "GHGAF001.bam"
    outcome = decrypt_file(source, target, user_keys.secret)
    assert outcome.outcome is Outcome.UNVERIFIED
    assert not target.exists()
    assert (tmp_path / "GHGAF001.bam.unverified").read_bytes() == plaintext[: 2 * 65536]
    # a re-run reports it unverified again instead of skipping a final-named file
    assert decrypt_file(source, target, user_keys.secret).outcome is Outcome.UNVERIFIED


def test_cut_at_segment_boundary_with_sidecar_fails(
    tmp_path: Path, user_keys: KeyPair, plaintext: bytes
) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    _sidecar(source, hashlib.sha256(plaintext).hexdigest())
    _segments_cut(source, 2)
    target = tmp_path / "GHGAF001.bam"
    with pytest.raises(IntegrityError, match="checksum"):
        decrypt_file(source, target, user_keys.secret)
    assert not target.exists()


def test_plaintext_output_is_private(tmp_path: Path, user_keys: KeyPair, plaintext: bytes) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    _sidecar(source, hashlib.sha256(plaintext).hexdigest())
    target = tmp_path / "GHGAF001.bam"
    old = os.umask(0o022)
    try:
        decrypt_file(source, target, user_keys.secret)
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "planted", ["GHGAF001.bam", "GHGAF001.bam.part", "GHGAF001.bam.unverified"]
)
def test_symlink_at_output_names_is_refused(
    tmp_path: Path, user_keys: KeyPair, plaintext: bytes, planted: str
) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    _sidecar(source, hashlib.sha256(plaintext).hexdigest())
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    (tmp_path / planted).symlink_to(victim)
    sidecar_text = sidecar_path(source).read_text()
    # refused before the download is read (or its checksum file rewritten)
    with (
        patch("ghga_connector.core.decrypt.decrypted_chunks", side_effect=AssertionError),
        pytest.raises(OutputError, match="symbolic link"),
    ):
        decrypt_file(source, tmp_path / "GHGAF001.bam", user_keys.secret, overwrite=True)
    assert sidecar_path(source).read_text() == sidecar_text
    assert victim.read_bytes() == b"precious"
    assert (tmp_path / planted).is_symlink()


def test_stale_part_file_is_replaced(tmp_path: Path, user_keys: KeyPair, plaintext: bytes) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    _sidecar(source, hashlib.sha256(plaintext).hexdigest())
    (tmp_path / "GHGAF001.bam.part").write_bytes(b"left over from a crash")
    outcome = decrypt_file(source, tmp_path / "GHGAF001.bam", user_keys.secret)
    assert outcome.outcome is Outcome.DONE
    assert (tmp_path / "GHGAF001.bam").read_bytes() == plaintext


@pytest.mark.parametrize("size", [1, 65536, 17 * 65536 * 16 + 5])
def test_decrypt_sizes(tmp_path: Path, user_keys: KeyPair, size: int) -> None:
    # the last size spans more than one read batch of 256 segments
    plain = os.urandom(size)
    source = _encrypt(tmp_path, plain, user_keys)
    _sidecar(source, hashlib.sha256(plain).hexdigest())
    target = tmp_path / "out"
    outcome = decrypt_file(source, target, user_keys.secret)
    assert target.read_bytes() == plain
    assert outcome.size == size


def test_sidecar_is_case_insensitive(tmp_path: Path, user_keys: KeyPair, plaintext: bytes) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    _sidecar(source, hashlib.sha256(plaintext).hexdigest().upper())
    assert expected_checksum(source) == hashlib.sha256(plaintext).hexdigest()
    outcome = decrypt_file(source, tmp_path / "out", user_keys.secret)
    assert outcome.details["verified"] is True


def test_wrong_checksum_leaves_nothing(
    tmp_path: Path, user_keys: KeyPair, plaintext: bytes
) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    _sidecar(source, hashlib.sha256(b"something else").hexdigest())
    target = tmp_path / "GHGAF001.bam"
    with pytest.raises(IntegrityError, match="checksum"):
        decrypt_file(source, target, user_keys.secret)
    assert not target.exists()
    assert not target.with_name(target.name + ".part").exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("offset", [124 + 12 + 5, 124 + 65564 + 100, -1])
def test_tampered_byte_leaves_nothing(
    tmp_path: Path, user_keys: KeyPair, plaintext: bytes, offset: int
) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    data = bytearray(source.read_bytes())
    data[offset] ^= 0x40
    source.write_bytes(bytes(data))
    target = tmp_path / "GHGAF001.bam"
    with pytest.raises(IntegrityError, match="authentication"):
        decrypt_file(source, target, user_keys.secret)
    assert not target.exists()
    assert _leftovers(tmp_path) == []


def test_truncated_file_leaves_nothing(
    tmp_path: Path, user_keys: KeyPair, plaintext: bytes
) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    source.write_bytes(source.read_bytes()[:-20])
    target = tmp_path / "GHGAF001.bam"
    with pytest.raises(IntegrityError):
        decrypt_file(source, target, user_keys.secret)
    assert _leftovers(tmp_path) == []


def test_existing_target_is_skipped_only_when_proven(
    tmp_path: Path, user_keys: KeyPair, plaintext: bytes
) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    target = tmp_path / "GHGAF001.bam"
    target.write_bytes(b"keep me")
    # no checksum file: not proven either way
    assert decrypt_file(source, target, user_keys.secret).outcome is Outcome.UNVERIFIED
    _sidecar(source, hashlib.sha256(plaintext).hexdigest())
    with pytest.raises(IntegrityError, match="does not match") as error:
        decrypt_file(source, target, user_keys.secret)
    assert "--overwrite" in (error.value.hint or "")
    assert target.read_bytes() == b"keep me"
    target.unlink()
    assert decrypt_file(source, target, user_keys.secret).outcome is Outcome.DONE
    # written and vouched for: the next run skips it without reading it
    with patch("ghga_connector.core.decrypt.file_sha256", side_effect=AssertionError):
        outcome = decrypt_file(source, target, user_keys.secret)
    assert outcome.outcome is Outcome.SKIPPED
    assert "--overwrite" not in outcome.message
    # a file changed after it was written is read again, and fails
    target.write_bytes(plaintext[:-1] + b"!")
    with pytest.raises(IntegrityError):
        decrypt_file(source, target, user_keys.secret)


def test_existing_target_overwritten(tmp_path: Path, user_keys: KeyPair, plaintext: bytes) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    target = tmp_path / "GHGAF001.bam"
    target.write_bytes(b"old")
    _sidecar(source, hashlib.sha256(plaintext).hexdigest())
    outcome = decrypt_file(source, target, user_keys.secret, overwrite=True)
    assert outcome.outcome is Outcome.DONE
    assert target.read_bytes() == plaintext


def test_failed_overwrite_keeps_old_target(
    tmp_path: Path, user_keys: KeyPair, plaintext: bytes
) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    _sidecar(source, "0" * 64)
    target = tmp_path / "GHGAF001.bam"
    target.write_bytes(b"old")
    with pytest.raises(IntegrityError):
        decrypt_file(source, target, user_keys.secret, overwrite=True)
    assert target.read_bytes() == b"old"


def test_wrong_key(
    tmp_path: Path, user_keys: KeyPair, other_keys: KeyPair, plaintext: bytes
) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    target = tmp_path / "GHGAF001.bam"
    with pytest.raises(KeyFileError, match="was not encrypted for your key") as error:
        decrypt_file(source, target, other_keys.secret)
    assert "private key" in (error.value.hint or "")
    assert _leftovers(tmp_path) == []


def test_not_a_crypt4gh_file(tmp_path: Path, user_keys: KeyPair) -> None:
    source = tmp_path / "plain.c4gh"
    source.write_bytes(b"just some text, not encrypted")
    with pytest.raises(KeyFileError):
        decrypt_file(source, tmp_path / "plain", user_keys.secret)
    assert _leftovers(tmp_path) == []


def test_checksum_line_format() -> None:
    assert checksum_line("ab" * 32, "x.bam") == f"{'ab' * 32}  x.bam\n"


def _reheader(source: Path, keys: KeyPair, packets: Callable[[bytes], list[bytes]]) -> None:
    """Give ``source`` a new header of ``packets(session_key)``, each encrypted for ``keys``."""
    with source.open("rb") as infile:
        [session_key], _ = c4gh_header.deconstruct(infile, [(0, keys.secret, None)])
        body = infile.read()
    recipients = [(0, keys.secret, keys.public)]
    encrypted = [
        sealed
        for packet in packets(bytes(session_key))
        for sealed in c4gh_header.encrypt(packet, recipients)
    ]
    source.write_bytes(c4gh_header.serialize(encrypted) + body)


def _one_key(key: bytes) -> list[bytes]:
    return [c4gh_header.make_packet_data_enc(0, key)]


def _key_and_edit_list(key: bytes) -> list[bytes]:
    return [*_one_key(key), c4gh_header.make_packet_data_edit_list([0, 100])]


def _two_keys(key: bytes) -> list[bytes]:
    return [*_one_key(key), c4gh_header.make_packet_data_enc(0, os.urandom(32))]


def test_rebuilt_header_with_one_key_decrypts(
    tmp_path: Path, user_keys: KeyPair, plaintext: bytes
) -> None:
    # the helper of the two tests below keeps a header the client supports intact
    source = _encrypt(tmp_path, plaintext, user_keys)
    _reheader(source, user_keys, _one_key)
    _sidecar(source, hashlib.sha256(plaintext).hexdigest())
    decrypt_file(source, tmp_path / "GHGAF001.bam", user_keys.secret)
    assert (tmp_path / "GHGAF001.bam").read_bytes() == plaintext


@pytest.mark.parametrize("packets", [_key_and_edit_list, _two_keys])
def test_unsupported_header_is_refused(
    tmp_path: Path,
    user_keys: KeyPair,
    plaintext: bytes,
    packets: Callable[[bytes], list[bytes]],
) -> None:
    # an edit list (a part of the plaintext hidden) or several session keys: refused,
    # not decrypted as if the header held one key and nothing else
    source = _encrypt(tmp_path, plaintext, user_keys)
    _reheader(source, user_keys, packets)
    with pytest.raises(IntegrityError, match="unsupported Crypt4GH header"):
        decrypt_file(source, tmp_path / "GHGAF001.bam", user_keys.secret, allow_unverified=True)
    assert _leftovers(tmp_path) == []


def test_part_file_not_created_here_is_not_removed(
    tmp_path: Path, user_keys: KeyPair, plaintext: bytes
) -> None:
    # another process created GHGAF001.bam.part between our removal of a stale one and
    # our exclusive create: its file stays
    source = _encrypt(tmp_path, plaintext, user_keys)
    _sidecar(source, hashlib.sha256(plaintext).hexdigest())
    theirs = tmp_path / "GHGAF001.bam.part"

    def taken(path: Path) -> int:
        theirs.write_bytes(b"being written by another process")
        raise FileExistsError(17, "File exists")

    with (
        patch("ghga_connector.core.decrypt.create_exclusive", side_effect=taken),
        pytest.raises(OutputError, match="File exists"),
    ):
        decrypt_file(source, tmp_path / "GHGAF001.bam", user_keys.secret)
    assert theirs.read_bytes() == b"being written by another process"


def test_existing_target_outcomes(tmp_path: Path, user_keys: KeyPair, plaintext: bytes) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    sha256 = hashlib.sha256(plaintext).hexdigest()
    target = tmp_path / "GHGAF001.bam"
    target.write_bytes(plaintext)  # the plaintext, decrypted elsewhere: not vouched for
    outcome = decrypt_file(source, target, user_keys.secret)
    assert outcome.outcome is Outcome.UNVERIFIED
    assert (outcome.name, outcome.path, outcome.size) == (source.name, target, PLAIN_SIZE)
    assert outcome.details == {"verified": False}
    assert outcome.message == (
        "GHGAF001.bam exists already, but there is no GHGAF001.bam.sha256 to check it against"
    )
    _sidecar(source, sha256)
    outcome = decrypt_file(source, target, user_keys.secret)
    assert outcome.outcome is Outcome.SKIPPED
    assert "matches the checksum" in outcome.message
    assert outcome.details == {"sha256": sha256, "verified": True}
    # read once, then vouched for: the next run does not read it
    with patch("ghga_connector.core.decrypt.file_sha256", side_effect=AssertionError):
        outcome = decrypt_file(source, target, user_keys.secret)
    assert outcome.outcome is Outcome.SKIPPED
    assert (outcome.name, outcome.path, outcome.size) == (source.name, target, PLAIN_SIZE)
    assert outcome.message == "GHGAF001.bam exists already, verified when it was written"
    assert outcome.details == {"sha256": sha256, "verified": True}


def _vouches(sidecar: Path) -> list[dict[str, object]]:
    lines = sidecar.read_text().splitlines()
    return [json.loads(line[len(VOUCH_PREFIX) :]) for line in lines if line.startswith("#")]


def test_vouch_records_the_file_identity(tmp_path: Path) -> None:
    target = tmp_path / "X.bam"
    target.write_bytes(b"data")
    vouch_for(target, "a" * 64)
    info = target.lstat()
    # the documented record: name, size, modification time (ns) and inode
    assert _vouches(tmp_path / "X.bam.sha256") == [
        {"file": "X.bam", "size": 4, "mtime_ns": info.st_mtime_ns, "inode": info.st_ino}
    ]


def test_sidecar_keeps_the_vouch_for_the_download(tmp_path: Path) -> None:
    # X.bam.c4gh (the download) and X.bam (its plaintext) share X.bam.sha256
    download = tmp_path / "X.bam.c4gh"
    download.write_bytes(b"encrypted")
    plain = tmp_path / "X.bam"
    plain.write_bytes(b"plain")
    vouch_for(download, "a" * 64)
    vouch_for(plain, "a" * 64)
    vouch_for(plain, "a" * 64)  # again (a decrypt with --overwrite): one vouch per file
    sidecar = tmp_path / "X.bam.sha256"
    assert [v["file"] for v in _vouches(sidecar)] == ["X.bam.c4gh", "X.bam"]
    assert vouched_checksum(download) == vouched_checksum(plain) == "a" * 64
    # another checksum: the vouches for the old one are dropped
    vouch_for(plain, "b" * 64)
    assert [v["file"] for v in _vouches(sidecar)] == ["X.bam"]
    assert vouched_checksum(download) is None
    assert vouched_checksum(plain) == "b" * 64


def test_vouches_in_odd_sidecars(tmp_path: Path) -> None:
    target = tmp_path / "X.bam"
    target.write_bytes(b"data")
    sidecar = tmp_path / "X.bam.sha256"
    # a comment before the checksum line, and a vouch line that is JSON but not a record
    sidecar.write_text(f"# made by hand\n{'a' * 64}  X.bam\n{VOUCH_PREFIX}[1, 2]\n")
    vouch_for(target, "a" * 64)
    sidecar.write_text("# checked by hand\n" + sidecar.read_text())
    assert vouched_checksum(target) == "a" * 64
    # no checksum first: a vouch alone proves nothing
    text = sidecar.read_text()
    sidecar.write_text(text.replace("a" * 64 + "  X.bam", "not-a-checksum  X.bam"))
    assert vouched_checksum(target) is None


class _Recorder(ProgressReporter):
    def __init__(self) -> None:
        self.finished: list[FileOutcome] = []

    def file_started(self, name: str, total: int) -> None:
        """Not used by the decrypt batch."""

    def advance(self, name: str, nbytes: int) -> None:
        """Not used by the decrypt batch."""

    def file_status(self, name: str, status: str) -> None:
        """Not used by the decrypt batch."""

    def file_finished(self, outcome: FileOutcome) -> None:
        self.finished.append(outcome)

    def message(self, text: str, *, level: str = "info") -> None:
        """Not used by the decrypt batch."""


def test_decrypt_batch(tmp_path: Path, user_keys: KeyPair, other_keys: KeyPair) -> None:
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    outbox.mkdir()
    plain = {name: os.urandom(1000) for name in ("A.bam", "B.bam", "C.bam")}
    for name, data in plain.items():
        source = _encrypt(inbox, data, other_keys if name == "B.bam" else user_keys, name)
        if name != "C.bam":
            _sidecar(source, hashlib.sha256(data).hexdigest())
    (outbox / "A.bam").write_bytes(b"old")
    sources = decrypt_sources(inbox, outbox)
    reporter = _Recorder()
    # defaults: an existing file is not overwritten, no checksum means X.unverified;
    # a file that fails does not stop the others
    outcomes = decrypt_batch(sources, outbox, user_keys.secret, reporter)
    assert [o.outcome for o in outcomes] == [Outcome.FAILED, Outcome.FAILED, Outcome.UNVERIFIED]
    assert (outbox / "A.bam").read_bytes() == b"old"
    assert (outbox / "C.bam.unverified").exists()
    assert not (outbox / "C.bam").exists()
    failed = outcomes[1]
    assert (failed.name, failed.path) == ("B.bam.c4gh", outbox / "B.bam")
    assert failed.error_code == "key_file"
    # the error's message without its hint (the summary gives hints once)
    assert (
        failed.message == "B.bam.c4gh was not encrypted for your key (or is not a Crypt4GH file)."
    )
    assert reporter.finished == outcomes
    outcomes = decrypt_batch(
        sources, outbox, user_keys.secret, _Recorder(), overwrite=True, allow_unverified=True
    )
    assert [o.outcome for o in outcomes] == [Outcome.DONE, Outcome.FAILED, Outcome.UNVERIFIED]
    assert (outbox / "A.bam").read_bytes() == plain["A.bam"]
    assert (outbox / "C.bam").read_bytes() == plain["C.bam"]


def test_decrypt_sources_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="'/nowhere/in'"):
        decrypt_sources(Path("/nowhere/in"), tmp_path)
    with pytest.raises(InputFileError, match=repr(str(tmp_path))):
        decrypt_sources(tmp_path, tmp_path)

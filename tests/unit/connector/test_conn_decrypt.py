"""core/decrypt.py: offline decryption with checksum verification and atomic output."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from crypt4gh import lib as c4gh_lib

from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.core.decrypt import decrypt_file, expected_checksum
from ghga_connector.core.download import CHECKSUM_SUFFIX, checksum_line
from ghga_connector.errors import IntegrityError, KeyFileError
from ghga_connector.models import Outcome

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


def _sidecar(source: Path, sha256: str) -> Path:
    sidecar = source.with_name(source.name + CHECKSUM_SUFFIX)
    sidecar.write_text(checksum_line(sha256, source.name.removesuffix(".c4gh")))
    return sidecar


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith((".c4gh", ".sha256")))


def test_decrypt_verified(tmp_path: Path, user_keys: KeyPair, plaintext: bytes) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    sha256 = hashlib.sha256(plaintext).hexdigest()
    _sidecar(source, sha256)
    target = tmp_path / "GHGAF001.bam"
    outcome = decrypt_file(source, target, user_keys.secret)
    assert outcome.outcome is Outcome.DONE
    assert target.read_bytes() == plaintext
    assert outcome.size == PLAIN_SIZE
    assert outcome.details == {"sha256": sha256, "verified": True}
    assert _leftovers(tmp_path) == ["GHGAF001.bam"]


def test_decrypt_without_sidecar(tmp_path: Path, user_keys: KeyPair, plaintext: bytes) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    target = tmp_path / "out.bam"
    outcome = decrypt_file(source, target, user_keys.secret)
    assert target.read_bytes() == plaintext
    assert outcome.details["verified"] is False


@pytest.mark.parametrize("size", [1, 65536, 17 * 65536 * 16 + 5])
def test_decrypt_sizes(tmp_path: Path, user_keys: KeyPair, size: int) -> None:
    # the last size spans more than one read batch of 256 segments
    plain = os.urandom(size)
    source = _encrypt(tmp_path, plain, user_keys)
    _sidecar(source, hashlib.sha256(plain).hexdigest())
    target = tmp_path / "out"
    decrypt_file(source, target, user_keys.secret)
    assert target.read_bytes() == plain


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


def test_existing_target_is_skipped(tmp_path: Path, user_keys: KeyPair, plaintext: bytes) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    target = tmp_path / "GHGAF001.bam"
    target.write_bytes(b"keep me")
    outcome = decrypt_file(source, target, user_keys.secret)
    assert outcome.outcome is Outcome.SKIPPED
    assert "--overwrite" in outcome.message
    assert target.read_bytes() == b"keep me"


def test_existing_target_overwritten(tmp_path: Path, user_keys: KeyPair, plaintext: bytes) -> None:
    source = _encrypt(tmp_path, plaintext, user_keys)
    target = tmp_path / "GHGAF001.bam"
    target.write_bytes(b"old")
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
    with pytest.raises(KeyFileError):
        decrypt_file(source, target, other_keys.secret)
    assert _leftovers(tmp_path) == []


def test_not_a_crypt4gh_file(tmp_path: Path, user_keys: KeyPair) -> None:
    source = tmp_path / "plain.c4gh"
    source.write_bytes(b"just some text, not encrypted")
    with pytest.raises(KeyFileError):
        decrypt_file(source, tmp_path / "plain", user_keys.secret)
    assert _leftovers(tmp_path) == []


def test_checksum_line_format() -> None:
    assert checksum_line("ab" * 32, "x.bam") == f"{'ab' * 32}  x.bam\n"

"""c4gh/keys.py: loading and cross-checking the user's Crypt4GH key pair."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from crypt4gh.keys import c4gh
from nacl.public import PrivateKey

from ghga_connector.c4gh.keys import load_key_pair, private_key_is_exposed
from ghga_connector.errors import KeyFileError, PassphraseError

PASSPHRASE = "correct horse"


def _generate(folder: Path, name: str, passphrase: bytes = b"") -> tuple[Path, Path]:
    seckey, pubkey = folder / f"{name}.sec", folder / f"{name}.pub"
    c4gh.generate(str(seckey), str(pubkey), passphrase=passphrase, comment=b"")
    return pubkey, seckey


def _no_passphrase() -> str:
    raise AssertionError("the passphrase must not be asked for an unprotected key")


def test_unprotected_key_pair(tmp_path: Path) -> None:
    pubkey, seckey = _generate(tmp_path, "plain")
    keys = load_key_pair(pubkey, seckey, _no_passphrase)
    assert len(keys.public) == 32
    assert len(keys.secret) == 32
    assert bytes(PrivateKey(keys.secret).public_key) == keys.public
    assert base64.b64decode(keys.public_b64) == keys.public
    assert repr(keys.secret) not in repr(keys)


def test_protected_key_pair(tmp_path: Path) -> None:
    pubkey, seckey = _generate(tmp_path, "locked", PASSPHRASE.encode())
    asked: list[int] = []

    def passphrase() -> str:
        asked.append(1)
        return PASSPHRASE

    keys = load_key_pair(pubkey, seckey, passphrase)
    assert asked == [1]
    assert bytes(PrivateKey(keys.secret).public_key) == keys.public


def test_wrong_passphrase(tmp_path: Path) -> None:
    pubkey, seckey = _generate(tmp_path, "locked", PASSPHRASE.encode())
    with pytest.raises(PassphraseError):
        load_key_pair(pubkey, seckey, lambda: "wrong passphrase")


def test_missing_passphrase_is_passphrase_error(tmp_path: Path) -> None:
    pubkey, seckey = _generate(tmp_path, "locked", PASSPHRASE.encode())

    def no_passphrase() -> str:
        raise PassphraseError("no passphrase available")

    with pytest.raises(PassphraseError):
        load_key_pair(pubkey, seckey, no_passphrase)


def test_mismatched_pair(tmp_path: Path) -> None:
    pubkey_a, _ = _generate(tmp_path, "a")
    _, seckey_b = _generate(tmp_path, "b")
    with pytest.raises(KeyFileError, match="does not belong") as info:
        load_key_pair(pubkey_a, seckey_b, _no_passphrase)
    assert not isinstance(info.value, PassphraseError)
    assert info.value.hint
    assert info.value.exit_code == 2


@pytest.mark.parametrize("missing", ["public", "private"])
def test_missing_file(tmp_path: Path, missing: str) -> None:
    pubkey, seckey = _generate(tmp_path, "k")
    (pubkey if missing == "public" else seckey).unlink()
    with pytest.raises(KeyFileError, match="does not exist"):
        load_key_pair(pubkey, seckey, _no_passphrase)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    pubkey, _ = _generate(tmp_path, "k")
    with pytest.raises(KeyFileError, match="not a file"):
        load_key_pair(pubkey, tmp_path, _no_passphrase)


@pytest.mark.parametrize("garbage", [b"garbage\nmore garbage\n", os.urandom(200), b""])
@pytest.mark.parametrize("which", ["public", "private"])
def test_garbage_file(tmp_path: Path, garbage: bytes, which: str) -> None:
    pubkey, seckey = _generate(tmp_path, "k")
    bad = tmp_path / "garbage"
    bad.write_bytes(garbage)
    args = (bad, seckey) if which == "public" else (pubkey, bad)
    with pytest.raises(KeyFileError) as info:
        load_key_pair(*args, _no_passphrase)
    assert not isinstance(info.value, PassphraseError)


def test_public_key_given_as_private_key(tmp_path: Path) -> None:
    pubkey, _ = _generate(tmp_path, "k")
    with pytest.raises(KeyFileError):
        load_key_pair(pubkey, pubkey, _no_passphrase)


@pytest.mark.posix_only
def test_private_key_is_exposed(tmp_path: Path) -> None:
    _, seckey = _generate(tmp_path, "k")
    seckey.chmod(0o600)
    assert not private_key_is_exposed(seckey)
    seckey.chmod(0o644)
    assert private_key_is_exposed(seckey)

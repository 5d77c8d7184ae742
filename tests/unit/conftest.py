"""Shared fixtures for the connector unit tests (tests/unit/connector)."""

from __future__ import annotations

from pathlib import Path

import pytest
from nacl.public import PrivateKey

from ghga_connector.c4gh.keys import KeyPair


def _pair() -> KeyPair:
    secret = PrivateKey.generate()
    return KeyPair(public=bytes(secret.public_key), secret=bytes(secret))


@pytest.fixture
def user_keys() -> KeyPair:
    """A fresh X25519 key pair of the user."""
    return _pair()


@pytest.fixture
def other_keys() -> KeyPair:
    """A second, unrelated key pair."""
    return _pair()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No GHGA_CONNECTOR_* / C4GH_* variables; cwd and HOME are a fresh empty folder."""
    import os

    for name in list(os.environ):
        if name.upper().startswith(("GHGA_CONNECTOR_", "C4GH_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    return work

"""Loading the user's Crypt4GH key pair.

Key files are the standard Crypt4GH (``crypt4gh-keygen``) or OpenSSH ed25519 formats.
The passphrase of a protected private key comes from an injected callable, never
from an argument (the CLI asks with a hidden prompt or reads ``C4GH_PASSPHRASE``).
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from crypt4gh.keys import get_private_key, get_public_key
from nacl.public import PrivateKey

from ghga_connector.errors import KeyFileError, PassphraseError

__all__ = [
    "KeyPair",
    "default_key_paths",
    "load_key_pair",
    "load_private_key",
    "private_key_is_exposed",
]

#: Where key pairs are looked for when neither an option nor a setting names them, in
#: this order: crypt4gh-keygen's default, then the current folder.
DEFAULT_KEY_LOCATIONS = (
    (Path("~/.c4gh/key.pub"), Path("~/.c4gh/key")),
    (Path("key.pub"), Path("key.sec")),
)

_MISSING_KEY_HINT = (
    "Pass --my-public-key-path and --my-private-key-path, set my_public_key_path and "
    "my_private_key_path in .ghga_connector.yaml, or create a key pair with "
    "'crypt4gh-keygen --pk key.pub --sk key.sec'."
)
_SWAP_HINT = "Did you swap --my-public-key-path and --my-private-key-path?"


@dataclass(frozen=True)
class KeyPair:
    """The user's X25519 key pair: 32 raw bytes each."""

    public: bytes
    secret: bytes = field(repr=False)

    @property
    def public_b64(self) -> str:
        """The public key as standard padded base64, as GHGA stores it (contract §2.2)."""
        return base64.b64encode(self.public).decode("ascii")


def private_key_is_exposed(path: Path) -> bool:
    """Whether a private key file is readable by users other than its owner (POSIX only)."""
    if os.name != "posix":
        return False
    mode = path.stat().st_mode
    return bool(mode & (stat.S_IRGRP | stat.S_IROTH))


def default_key_paths() -> tuple[Path, Path]:
    """The first of :data:`DEFAULT_KEY_LOCATIONS` that has a key file (public, private).

    Without any, ``./key.pub`` and ``./key.sec`` (which then give "does not exist").
    """
    for public, private in DEFAULT_KEY_LOCATIONS:
        public, private = public.expanduser(), private.expanduser()
        if public.is_file() or private.is_file():
            return public, private
    return DEFAULT_KEY_LOCATIONS[-1]


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise KeyFileError(f"The {what} file {str(path)!r} does not exist.", hint=_MISSING_KEY_HINT)
    if not path.is_file():
        raise KeyFileError(f"The {what} path {str(path)!r} is not a file.")


def _holds_other_kind(path: Path, what: str) -> bool:
    """Whether a key file holds the other kind of key (public instead of private or back)."""
    try:
        head = path.read_bytes()[:200].decode("ascii", errors="replace")
    except OSError:
        return False
    if what == "public key":
        return "PRIVATE KEY-----" in head
    return "PUBLIC KEY-----" in head or head.startswith("ssh-ed25519 ")


def load_private_key(path: Path, passphrase: Callable[[], str]) -> bytes:
    """Load a Crypt4GH or OpenSSH private key (32 raw bytes).

    crypt4gh reports a wrong passphrase (and any error of the passphrase callable) by
    printing to standard error and calling ``sys.exit(2)``; both are caught here and
    turned into this package's errors.

    Raises:
        KeyFileError: missing, unreadable or malformed file.
        PassphraseError: wrong passphrase, or none available.
    """
    _check_file(path, "private key")
    if _holds_other_kind(path, "private key"):
        raise KeyFileError(
            f"The private key file {str(path)!r} holds a public key.", hint=_SWAP_HINT
        )
    asked: list[BaseException | None] = []

    def callback() -> str:
        try:
            value = passphrase()
        except BaseException as error:
            asked.append(error)
            raise
        asked.append(None)
        return value

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            secret = bytes(get_private_key(str(path), callback))
    except (SystemExit, Exception):
        if asked and asked[-1] is not None:
            raise asked[-1] from None
        if asked:
            raise PassphraseError(f"Wrong passphrase for the private key {str(path)!r}.") from None
        raise KeyFileError(
            f"The private key file {str(path)!r} is not a Crypt4GH private key."
        ) from None
    if len(secret) != 32:
        raise KeyFileError(f"The private key in {str(path)!r} is not 32 bytes long.")
    return secret


def load_key_pair(
    public_key_path: Path, private_key_path: Path, passphrase: Callable[[], str]
) -> KeyPair:
    """Load and cross-check the user's key pair.

    Args:
        public_key_path: Crypt4GH or OpenSSH public key file.
        private_key_path: Crypt4GH or OpenSSH private key file.
        passphrase: called (once) only if the private key is protected.

    Raises:
        KeyFileError: a file is missing, malformed, or the two keys are not a pair.
        PassphraseError: the passphrase is wrong.
    """
    _check_file(public_key_path, "public key")
    _check_file(private_key_path, "private key")
    if _holds_other_kind(public_key_path, "public key"):
        raise KeyFileError(
            f"The public key file {str(public_key_path)!r} holds a private key.", hint=_SWAP_HINT
        )
    try:
        public = bytes(get_public_key(str(public_key_path)))
    except Exception as error:
        raise KeyFileError(
            f"The public key file {str(public_key_path)!r} is not a Crypt4GH public key."
        ) from error
    if len(public) != 32:
        raise KeyFileError(f"The public key in {str(public_key_path)!r} is not 32 bytes long.")
    secret = load_private_key(private_key_path, passphrase)
    if len(secret) != 32:
        raise KeyFileError(f"The private key in {str(private_key_path)!r} is not 32 bytes long.")
    derived = bytes(PrivateKey(secret).public_key)
    if derived != public:
        raise KeyFileError(
            f"The public key {str(public_key_path)!r} does not belong to the private key "
            f"{str(private_key_path)!r}.",
            hint="Pass the public key file created together with your private key.",
        )
    return KeyPair(public=public, secret=secret)

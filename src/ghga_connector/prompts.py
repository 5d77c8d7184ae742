"""Where secrets come from: files, environment variables or hidden prompts; never argv.

* the work package access token (WPAT): ``--wpat-file`` (``-`` for standard input),
  ``GHGA_CONNECTOR_WPAT``, standard input when it is piped (``echo "$TOKEN" |``, as
  4.x scripts do), a hidden prompt on a terminal, or (discouraged, with a warning)
  ``--wpat``;
* the passphrase of a protected private key: ``C4GH_PASSPHRASE`` or a hidden prompt.
"""

from __future__ import annotations

import getpass
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from ghga_connector.errors import PassphraseError, TokenError

__all__ = [
    "PASSPHRASE_ENV",
    "WPAT_ENV",
    "passphrase_source",
    "prompts_interactively",
    "read_wpat",
    "token_file_is_exposed",
]

WPAT_ENV = "GHGA_CONNECTOR_WPAT"
PASSPHRASE_ENV = "C4GH_PASSPHRASE"
#: Also accepted (the connector's own prefix); ``C4GH_PASSPHRASE`` wins if both are set.
PASSPHRASE_ENV_ALIAS = "GHGA_C4GH_PASSPHRASE"


def _env_passphrase() -> str | None:
    """``C4GH_PASSPHRASE``, else ``GHGA_C4GH_PASSPHRASE``; ``None`` if neither is set."""
    return os.environ.get(PASSPHRASE_ENV) or os.environ.get(PASSPHRASE_ENV_ALIAS) or None


def _interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def prompts_interactively() -> bool:
    """Whether a passphrase would be typed at a prompt (a terminal, no C4GH_PASSPHRASE)."""
    return not _env_passphrase() and _interactive()


def token_file_is_exposed(path: Path) -> bool:
    """Whether a token file is readable by users other than its owner (POSIX only)."""
    if os.name != "posix" or str(path) == "-":
        return False
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRGRP | stat.S_IROTH))


def _read_stdin() -> str:
    """The whole of standard input (a token piped in), or ``""``."""
    if sys.stdin is None:
        return ""
    try:
        return sys.stdin.read().strip()
    except (OSError, ValueError, UnicodeDecodeError):
        return ""


def read_wpat(
    wpat_file: Path | None,
    wpat_arg: str | None,
    warn: Callable[[str], None],
    *,
    prompt: Callable[[str], str] = getpass.getpass,
) -> str:
    """The WPAT text ``"<work package id>:<sealed token>"`` from the first source given.

    Sources in order: ``wpat_file`` (``-`` reads standard input), ``wpat_arg``,
    ``GHGA_CONNECTOR_WPAT``, standard input when it is not a terminal, a hidden prompt.

    Raises:
        TokenError: both a file and ``wpat_arg`` given, the file cannot be read, or no
            source is available.
    """
    if wpat_file is not None and wpat_arg:
        raise TokenError(
            "Give the access token either with --wpat-file or with --wpat, not both.",
            hint="Prefer --wpat-file: a token on the command line is visible to other users.",
        )
    if wpat_file is not None and str(wpat_file) == "-":
        text = _read_stdin()
        if not text:
            raise TokenError("--wpat-file - was given, but nothing came on standard input.")
        return text
    if wpat_file is not None:
        if not wpat_file.exists():
            raise TokenError(
                f"The token file {str(wpat_file)!r} does not exist.",
                hint="Check the path, or save the access token from the GHGA Data Portal "
                "in that file.",
            )
        try:
            text = wpat_file.read_text(encoding="utf-8").strip()
        except IsADirectoryError:
            raise TokenError(f"The token file {str(wpat_file)!r} is a folder.") from None
        except OSError as error:
            raise TokenError(
                f"The token file {str(wpat_file)!r} cannot be read: {error.strerror}."
            ) from None
        except UnicodeDecodeError:
            raise TokenError(f"The token file {str(wpat_file)!r} is not a text file.") from None
        if not text:
            raise TokenError(f"The token file {str(wpat_file)!r} is empty.")
        return text
    if wpat_arg:
        warn(
            "Passing the access token with --wpat makes it visible to other users of this "
            f"machine; prefer --wpat-file or {WPAT_ENV}."
        )
        return wpat_arg.strip()
    from_env = os.environ.get(WPAT_ENV, "").strip()
    if from_env:
        return from_env
    if _interactive():
        for _ in range(3):
            text = prompt("Work package access token (input hidden): ").strip()
            if text:
                return text
    else:
        piped = _read_stdin()
        if piped:
            return piped
    raise TokenError("No access token given.")


def passphrase_source(
    key_path: Path, *, prompt: Callable[[str], str] = getpass.getpass
) -> Callable[[], str]:
    """A callable the key loader calls only if the private key is protected.

    Raises (when called):
        PassphraseError: no passphrase available (no terminal, no ``C4GH_PASSPHRASE``).
    """

    def passphrase() -> str:
        value = _env_passphrase()
        if value:
            return value
        if _interactive():
            return prompt(f"Passphrase for {key_path} (input hidden): ")
        raise PassphraseError(
            f"The private key {str(key_path)!r} is protected by a passphrase.",
            hint=f"Run in a terminal to be asked for it, or set {PASSPHRASE_ENV} "
            f"(or {PASSPHRASE_ENV_ALIAS}).",
        )

    return passphrase

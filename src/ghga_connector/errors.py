"""The connector's error tree.

Every error the connector raises on purpose derives from :class:`ConnectorError`. Each
carries a one-line ``message`` (what is wrong), a ``hint`` (what to do) and the process
``exit_code`` the CLI uses:

* ``2``: usage, configuration or credential problem that the user must fix;
* ``1``: a transfer or a server failed (a later run may succeed);
* ``75``: a file is busy in another process (``EX_TEMPFAIL``; set by the summary, not by
  an error);
* ``130``: interrupted by the user (Ctrl-C, ``SIGINT``);
* ``143``: stopped by ``SIGTERM`` (a batch scheduler, ``kill``), handled like Ctrl-C.

Each class also has a stable ``error_code`` (``token``, ``unreachable``, ``integrity`` …),
given as ``"error_code"`` in the ``--json`` record of a failed file; docs/user-guide.md
lists them. Names never change meaning; new classes add new names.

The messages never contain secrets (tokens, passphrases, keys, presigned URLs).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
#: A file is busy in another process (``EX_TEMPFAIL`` of sysexits.h): try again later.
EXIT_BUSY = 75
EXIT_INTERRUPTED = 130
#: Standard output was closed by its reader (``… | head -1``): 128 + SIGPIPE, the status
#: a shell reports for coreutils killed by SIGPIPE.
EXIT_BROKEN_PIPE = 141
EXIT_TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """The process received ``SIGTERM`` and stopped like after Ctrl-C (exit 143).

    A :class:`KeyboardInterrupt`, so that every path that keeps a journal or a ``.part``
    file for Ctrl-C does the same here.
    """

    exit_code = EXIT_TERMINATED


#: What to do about an archived upload box (the upload and its dry run say the same).
#: An archived box is final (contract §5.2): it accepts no files and cannot be unlocked.
ARCHIVED_BOX_HINT = (
    "An archived box accepts no more files and cannot be unlocked; ask the GHGA Data "
    "Steward for a new upload box."
)

#: What a request id may look like to be shown (server-provided text is hostile input).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:{}-]{1,100}")


def request_id_note(request_id: str | None) -> str:
    """``(request id …; quote it when you contact the GHGA helpdesk)``, or ``""``."""
    if not request_id or not _REQUEST_ID.fullmatch(request_id):
        return ""
    return f"(request id {request_id}; quote it when you contact the GHGA helpdesk)"


class ConnectorError(Exception):
    """Base class of every error the connector raises on purpose.

    ``request_id``: the ``X-Request-Id`` of the failed GHGA request, if any; it is then
    the end of :attr:`hint` (so of every message that shows the hint), whatever hint the
    caller sets.
    """

    error_code: ClassVar[str] = "error"

    exit_code: int = EXIT_FAILURE
    default_hint: str = ""

    def __init__(
        self, message: str, *, hint: str | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.hint = self.default_hint if hint is None else hint

    @property
    def hint(self) -> str:
        """What to do, ending with the request id note if there is a request id."""
        note = request_id_note(self.request_id)
        return f"{self._hint} {note}".strip() if note else self._hint

    @hint.setter
    def hint(self, value: str) -> None:
        self._hint = value

    def __str__(self) -> str:
        return self.message


# --- problems the user fixes locally (exit code 2) -----------------------------------


class UserInputError(ConnectorError):
    """Bad arguments, files, keys, tokens or configuration."""

    error_code: ClassVar[str] = "usage"

    exit_code = EXIT_USAGE


class ConfigurationError(UserInputError):
    """The configuration file or an environment variable holds an invalid value."""

    error_code: ClassVar[str] = "configuration"

    default_hint = "Run 'ghga-connector config' to see the effective configuration."


class InputFileError(UserInputError):
    """A file to upload is missing, unreadable, a directory, empty or already encrypted."""

    error_code: ClassVar[str] = "input_file"


class OutputError(UserInputError):
    """The output directory is missing, or an output file exists already."""

    error_code: ClassVar[str] = "output"


class KeyFileError(UserInputError):
    """A Crypt4GH key file is missing, malformed or does not fit its partner."""

    error_code: ClassVar[str] = "key_file"

    default_hint = "Create a key pair with 'crypt4gh-keygen' or pass the right paths."


class PassphraseError(KeyFileError):
    """The passphrase of the private key is wrong or missing."""

    error_code: ClassVar[str] = "passphrase"

    default_hint = "Enter the passphrase at the prompt or set C4GH_PASSPHRASE."


class TokenError(UserInputError):
    """The work package access token (WPAT) is missing, malformed or not for this key."""

    error_code: ClassVar[str] = "token"

    default_hint = (
        "Copy the access token again from the GHGA Data Portal and pass it with "
        "--wpat-file or the GHGA_CONNECTOR_WPAT environment variable."
    )


class AccessDeniedError(UserInputError):
    """The work package service refused the WPAT (HTTP 403: wrong, expired or revoked)."""

    error_code: ClassVar[str] = "access_denied"

    default_hint = "Request a new access token from the GHGA Data Portal."


# --- problems with servers and transfers (exit code 1) -------------------------------


class ServiceUnreachableError(ConnectorError):
    """A GHGA service or the object storage could not be reached."""

    error_code: ClassVar[str] = "unreachable"

    default_hint = "Check your network connection and the 'wkvs_api_url' setting, then retry."


class BodyBrokenError(ServiceUnreachableError):
    """An object body broke off after its headers arrived (retried per range, with backoff)."""

    error_code: ClassVar[str] = "body_broken"
    # The object storage answered, so the service URLs are right: no 'wkvs_api_url' here.
    default_hint = (
        "Run the same command again; it continues where it stopped. If it keeps happening, "
        "check your network connection or proxy."
    )


class PresignedUrlExpired(ConnectorError):
    """The object storage answered 403 to a presigned URL: it expired; get a new one.

    The transfer engine catches it and asks the GHGA service for a new URL; it reaches
    the user only if that keeps failing.
    """

    error_code: ClassVar[str] = "url_expired"

    default_hint = "Run the same command again; the connector asks for fresh URLs."

    def __init__(
        self,
        message: str = "A presigned object storage URL expired or was refused (HTTP 403).",
        *,
        hint: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint, request_id=request_id)


class ServerResponseError(ConnectorError):
    """A GHGA service answered with an unexpected status or body.

    ``status_code`` is the HTTP status; ``exception_id`` and ``description`` come from
    the GHGA error body ``{"data": ..., "description": ..., "exception_id": ...}`` if
    the service sent one.
    """

    error_code: ClassVar[str] = "server_response"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        exception_id: str | None = None,
        description: str | None = None,
        data: dict[str, Any] | None = None,
        hint: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint, request_id=request_id)
        self.status_code = status_code
        self.exception_id = exception_id
        self.description = description
        self.data = data or {}


class UploadRejectedError(ServerResponseError):
    """The upload controller refused to create or complete an upload."""

    error_code: ClassVar[str] = "upload_rejected"


class FileNotDownloadableError(ServerResponseError):
    """The download controller does not know the file or refused access to it."""

    error_code: ClassVar[str] = "not_downloadable"


class StagingTimeoutError(ConnectorError):
    """A file did not become available for download within ``max_wait_time`` seconds."""

    error_code: ClassVar[str] = "staging_timeout"

    default_hint = "Try again later; large files can take a while to be staged."


class IntegrityError(ConnectorError):
    """Data failed a check: a Crypt4GH MAC, a size or a SHA-256 checksum."""

    error_code: ClassVar[str] = "integrity"

    default_hint = "The damaged output was removed. Run the command again."

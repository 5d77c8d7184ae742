"""The connector's error tree.

Every error the connector raises on purpose derives from :class:`ConnectorError`. Each
carries a one-line ``message`` (what is wrong), a ``hint`` (what to do) and the process
``exit_code`` the CLI uses:

* ``2``: usage, configuration or credential problem that the user must fix;
* ``1``: a transfer or a server failed (a later run may succeed);
* ``130``: interrupted by the user (Ctrl-C, ``SIGINT``);
* ``143``: stopped by ``SIGTERM`` (a batch scheduler, ``kill``), handled like Ctrl-C.

The messages never contain secrets (tokens, passphrases, keys, presigned URLs).
"""

from __future__ import annotations

import re
from typing import Any

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """The process received ``SIGTERM`` and stopped like after Ctrl-C (exit 143).

    A :class:`KeyboardInterrupt`, so that every path that keeps a journal or a ``.part``
    file for Ctrl-C does the same here.
    """

    exit_code = EXIT_TERMINATED


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

    exit_code = EXIT_USAGE


class ConfigurationError(UserInputError):
    """The configuration file or an environment variable holds an invalid value."""

    default_hint = "Run 'ghga-connector config' to see the effective configuration."


class InputFileError(UserInputError):
    """A file to upload is missing, unreadable, a directory, empty or already encrypted."""


class OutputError(UserInputError):
    """The output directory is missing, or an output file exists already."""


class KeyFileError(UserInputError):
    """A Crypt4GH key file is missing, malformed or does not fit its partner."""

    default_hint = "Create a key pair with 'crypt4gh-keygen' or pass the right paths."


class PassphraseError(KeyFileError):
    """The passphrase of the private key is wrong or missing."""

    default_hint = "Enter the passphrase at the prompt or set C4GH_PASSPHRASE."


class TokenError(UserInputError):
    """The work package access token (WPAT) is missing, malformed or not for this key."""

    default_hint = (
        "Copy the access token again from the GHGA Data Portal and pass it with "
        "--wpat-file or the GHGA_CONNECTOR_WPAT environment variable."
    )


class AccessDeniedError(UserInputError):
    """The work package service refused the WPAT (HTTP 403: wrong, expired or revoked)."""

    default_hint = "Request a new access token from the GHGA Data Portal."


# --- problems with servers and transfers (exit code 1) -------------------------------


class ServiceUnreachableError(ConnectorError):
    """A GHGA service or the object storage could not be reached."""

    default_hint = "Check your network connection and the 'wkvs_api_url' setting, then retry."


class BodyBrokenError(ServiceUnreachableError):
    """An object body broke off after its headers arrived (retried per range, with backoff)."""

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


class FileNotDownloadableError(ServerResponseError):
    """The download controller does not know the file or refused access to it."""


class StagingTimeoutError(ConnectorError):
    """A file did not become available for download within ``max_wait_time`` seconds."""

    default_hint = "Try again later; large files can take a while to be staged."


class IntegrityError(ConnectorError):
    """Data failed a check: a Crypt4GH MAC, a size or a SHA-256 checksum."""

    default_hint = "The damaged output was removed. Run the command again."


class TransferFailedError(ConnectorError):
    """One or more files of a batch failed; the others finished."""


class Interrupted(ConnectorError):
    """The user pressed Ctrl-C."""

    exit_code = EXIT_INTERRUPTED

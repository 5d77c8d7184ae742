"""Reading GHGA responses and translating their errors into words a researcher understands.

GHGA domain errors have the body ``{"data": {...}, "description": str, "exception_id":
str}``; the work package service and authentication failures use ``{"detail": str}``
(contract §3.0). The table below maps each ``exception_id`` to a message and a hint.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from ghga_connector.errors import (
    ARCHIVED_BOX_HINT,
    AccessDeniedError,
    ServerResponseError,
    ServiceUnreachableError,
)

__all__ = [
    "ERROR_MESSAGES",
    "error_body",
    "json_string",
    "network_errors",
    "request_id_of",
    "server_error",
    "url_host",
]

#: exception_id -> (message, hint). ``{alias}`` etc. are filled from the error's data.
ERROR_MESSAGES: dict[str, tuple[str, str]] = {
    "boxNotFound": (
        "The upload box of this work package does not exist any more.",
        "Ask the GHGA Data Steward for a new upload access token.",
    ),
    "boxStateError": (
        "The upload box is {box_state} and does not accept changes.",
        "Ask the GHGA Data Steward to unlock the upload box.",
    ),
    "noSuchStorage": (
        "The server has no storage configured for this upload box.",
        "Report this to the GHGA helpdesk.",
    ),
    "tooManyOpenUploads": (
        "The upload box already has {max_concurrent} unfinished uploads.",
        "Let running uploads finish, or remove stale ones with 'ghga-connector delete'.",
    ),
    "boxMaxSizeExceeded": (
        "The upload box is full: {file_alias!r} would exceed its limit of {max_size} bytes.",
        "Ask the GHGA Data Steward to enlarge the upload box.",
    ),
    "invalidPartSize": (
        "The server refused the part size {part_size} for {file_alias!r}.",
        "Change 'part_size' in the configuration.",
    ),
    "orphanedMultipartUpload": (
        "The storage still holds an unfinished upload of {file_alias!r}.",
        "Try again later, or contact the GHGA helpdesk.",
    ),
    "fileUploadAlreadyExists": (
        "A file with the alias {alias!r} is already in the upload box.",
        "Use --overwrite to replace it, or choose another alias.",
    ),
    "fileUploadNotFound": (
        "The upload does not exist in the upload box (it may have been removed).",
        "Start the upload again.",
    ),
    "s3UploadNotFound": (
        "The storage has no open upload for this file (it may have been cleaned up).",
        "Start the upload again.",
    ),
    "fileUploadStateError": (
        "The upload was already marked failed or cancelled by the server.",
        "Start the upload again.",
    ),
    "checksumMismatch": (
        "The server found that the uploaded data does not match its checksums.",
        "The upload was discarded; run the command again.",
    ),
    "uploadSizeMismatch": (
        "The server found that the uploaded data has the wrong size.",
        "The upload was discarded; run the command again.",
    ),
    "uploadCompletionError": (
        "The storage could not assemble the uploaded parts.",
        "Run the command again; if it keeps failing, contact the GHGA helpdesk.",
    ),
    "uploadAbortError": (
        "The storage could not remove the unfinished upload.",
        "Try again later.",
    ),
    "notAuthorized": (
        "The work order token does not match this upload box or file.",
        "Check that the access token belongs to this upload box.",
    ),
    "noSuchObject": (
        "The file is not registered for download.",
        "Check the accession; the file may not be archived yet.",
    ),
    "wrongFileAuthorizationError": (
        "The work order token is not valid for this file.",
        "Request a new access token from the GHGA Data Portal.",
    ),
    "internalServerError": (
        "The download service had an internal error.",
        "Try again later.",
    ),
    "internalError": (
        "The service had an internal error.",
        "Try again later.",
    ),
}


def url_host(url: str | httpx.URL) -> str:
    """``scheme://host[:port]`` of a URL: safe to show (no path, query or signature)."""
    parts = urlsplit(str(url))
    return f"{parts.scheme}://{parts.netloc}"


def request_id_of(response: httpx.Response) -> str | None:
    """The request id of ``response``: the server's ``X-Request-Id``, else the one sent."""
    sent = response.request.headers.get("X-Request-Id") if _has_request(response) else None
    return response.headers.get("X-Request-Id") or sent


def _has_request(response: httpx.Response) -> bool:
    try:
        response.request  # noqa: B018 - raises RuntimeError when there is none
    except RuntimeError:
        return False
    return True


def error_body(response: httpx.Response) -> tuple[str | None, str | None, dict[str, Any]]:
    """``(exception_id, description, data)`` of a GHGA error response, or Nones."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None, None, {}
    if isinstance(body, dict):
        if "exception_id" in body:
            data = body.get("data")
            return (
                str(body["exception_id"]),
                str(body.get("description", "")),
                data if isinstance(data, dict) else {},
            )
        detail = body.get("detail")
        if isinstance(detail, str):
            return None, detail, {}
    return None, None, {}


#: (exception_id, box_state) -> hint, where the state changes what the user can do.
#: An archived box is final (contract §5.2: archived has no way out; the UCS answers
#: an unlock of an archived box with 500): only a new box helps. A locked box can be
#: unlocked again by the Data Steward.
HINTS_BY_BOX_STATE: dict[tuple[str, str], str] = {
    ("boxStateError", "archived"): ARCHIVED_BOX_HINT,
}


def server_error(
    response: httpx.Response,
    what: str,
    *,
    error_class: type[ServerResponseError] = ServerResponseError,
) -> ServerResponseError:
    """The error for an unexpected ``response`` to the operation ``what``.

    A 403 from the work package service becomes :class:`AccessDeniedError` (raised, since
    it is not a :class:`ServerResponseError`).
    """
    exception_id, description, data = error_body(response)
    status = response.status_code
    if exception_id and exception_id in ERROR_MESSAGES:
        template, hint = ERROR_MESSAGES[exception_id]
        hint = HINTS_BY_BOX_STATE.get((exception_id, str(data.get("box_state"))), hint)
        try:
            message = template.format(**data)
        except (KeyError, IndexError, ValueError):
            message = template.split(":")[0].format_map(_Blank())
    elif status in (401, 403):
        message = f"The server refused access ({description or 'HTTP ' + str(status)})."
        hint = "Request a new access token from the GHGA Data Portal."
    elif status >= 500:
        message = f"The server failed (HTTP {status})."
        hint = "Try again later; if it keeps failing, contact the GHGA helpdesk."
    else:
        message = f"Unexpected answer HTTP {status}" + (f": {description}" if description else "")
        hint = ""
    return error_class(
        f"{what}: {message}",
        status_code=status,
        exception_id=exception_id,
        description=description,
        data=data,
        hint=hint,
        request_id=request_id_of(response),
    )


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"


def access_denied(response: httpx.Response) -> AccessDeniedError:
    """The error for a 403 from the work package service (contract §2.2)."""
    _, detail, _ = error_body(response)
    reason = detail or "access denied"
    return AccessDeniedError(
        f"The work package service refused the access token: {reason}.",
        request_id=request_id_of(response),
    )


def json_string(response: httpx.Response, what: str) -> str:
    """A body that is a bare JSON string (WOTs, part URLs, envelopes).

    Raises:
        ServerResponseError: if the body is not a JSON string.
    """
    try:
        value = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        value = None
    if not isinstance(value, str):
        raise ServerResponseError(
            f"{what}: the server sent an unexpected body.",
            status_code=response.status_code,
            request_id=request_id_of(response),
        )
    return value


@contextmanager
def network_errors(target: str) -> Iterator[None]:
    """Turn httpx network errors (after all retries) into :class:`ServiceUnreachableError`.

    ``target`` names the service or host; it must not contain a presigned URL.

    Raises:
        ServiceUnreachableError: for ``httpx.TransportError`` (proxy, timeout, connection)
            raised inside the block.
    """
    try:
        yield
    except httpx.ProxyError:
        raise ServiceUnreachableError(
            f"Could not reach {target} through the proxy (ProxyError).",
            hint="Check the 'proxy' setting and the HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and "
            "NO_PROXY variables; the connector already retried.",
        ) from None
    except httpx.TimeoutException as error:
        raise ServiceUnreachableError(
            f"{target} did not answer in time ({type(error).__name__})."
        ) from None
    except httpx.TransportError as error:
        if _certificate_refused(error):
            raise ServiceUnreachableError(
                f"The TLS certificate of {target} could not be verified; the connection "
                "was refused.",
                hint="If your site inspects TLS traffic, point the 'ca_bundle' setting (or "
                "SSL_CERT_FILE) at its certificate authority; otherwise report this to the "
                "GHGA helpdesk.",
            ) from None
        raise ServiceUnreachableError(
            f"Could not reach {target} ({type(error).__name__})."
        ) from None


def _certificate_refused(error: BaseException) -> bool:
    """Whether ``error`` (or what it wraps) is a failed TLS certificate verification."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        text = str(current)
        if "CERTIFICATE_VERIFY_FAILED" in text or "SSLCertVerificationError" in text:
            return True
        current = current.__cause__ or current.__context__
    return False

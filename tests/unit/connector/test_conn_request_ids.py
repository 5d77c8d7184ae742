"""Every error about a failed GHGA request ends with the server's request id, and
``--debug`` logs the id of every request."""

from __future__ import annotations

import logging

import httpx
import pytest

from ghga_connector.adapters.http import make_http_client
from ghga_connector.adapters.responses import access_denied, json_string, server_error
from ghga_connector.config import Config
from ghga_connector.errors import ServerResponseError, UploadRejectedError

RID = "3f2a9c1e-8d4b-4f6a-9b7c-0e1d2c3b4a59"
NOTE = f"(request id {RID}; quote it when you contact the GHGA helpdesk)"
URL = "https://data.ghga.de/ucs/boxes"


def _response(status: int, body: object, request_id: str | None = RID) -> httpx.Response:
    headers = {} if request_id is None else {"X-Request-Id": request_id}
    request = httpx.Request("GET", URL, headers={"X-Request-Id": "sent-by-client"})
    return httpx.Response(status, json=body, headers=headers, request=request)


def test_server_error_ends_with_the_request_id() -> None:
    error = server_error(
        _response(500, {"exception_id": "internalError", "description": "", "data": {}}),
        "Starting the upload of 'a.bam'",
        error_class=UploadRejectedError,
    )
    assert error.request_id == RID
    assert error.hint.endswith(NOTE)
    assert (error.message + " " + error.hint).endswith(NOTE)
    # a hint set later by the caller keeps the id at the end
    error.hint = "Run the same command again."
    assert error.hint == f"Run the same command again. {NOTE}"


def test_access_denied_and_unexpected_body_carry_the_id() -> None:
    assert access_denied(_response(403, {"detail": "expired"})).hint.endswith(NOTE)
    with pytest.raises(ServerResponseError) as info:
        json_string(_response(200, {"not": "a string"}), "Requesting a WOT")
    assert info.value.hint.endswith(NOTE)


def test_the_id_sent_is_used_when_the_server_sends_none() -> None:
    error = server_error(_response(502, None, request_id=None), "Listing the upload box")
    assert error.request_id == "sent-by-client"


@pytest.mark.parametrize("hostile", ["\x1b]0;pwn\x07", "[/x]", "a" * 200, "id with spaces"])
def test_a_hostile_request_id_is_not_shown(hostile: str) -> None:
    error = server_error(_response(500, None, request_id=hostile), "Listing the upload box")
    assert "request id" not in error.hint
    assert hostile not in error.hint


async def test_debug_log_has_the_servers_request_id(caplog: pytest.LogCaptureFixture) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={}, headers={"X-Request-Id": RID})

    caplog.set_level(logging.DEBUG, logger="ghga_connector.http")
    client = make_http_client(Config(), user_agent="t", transport=httpx.MockTransport(answer))
    async with client:
        await client.get(URL + "?X-Amz-Signature=secret")
    (line,) = [r.getMessage() for r in caplog.records if r.name == "ghga_connector.http"]
    assert line.startswith("GET https://data.ghga.de/ucs/boxes -> 200 in ")
    assert line.endswith(f"(request id {RID})")
    assert "secret" not in line

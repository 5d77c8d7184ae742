"""adapters/services.py: the GHGA service clients against mock transports."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from ghga_connector.adapters.services import (
    DcsClient,
    ObjectStorageClient,
    PresignedUrlExpired,
    Staging,
    UcsClient,
    WkvsClient,
    WorkOrderTokenAuth,
    WpsClient,
)
from ghga_connector.errors import (
    AccessDeniedError,
    FileNotDownloadableError,
    ServerResponseError,
    ServiceUnreachableError,
    UploadRejectedError,
)
from ghga_connector.models import DrsObject, FileUploadState, UploadChecksums

WKVS = "http://wkvs.test/.well-known"
WPS = "http://api.test/wps"
UCS = "http://api.test/ucs"
DCS = "http://api.test/ga4gh/drs/v1"
S3 = "http://s3.test/inbox/object?X-Amz-Signature=secret"
WP_ID = "3d8a1b2c-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
RDUB = "11111111-2222-4333-8444-555555555555"
FUB = "66666666-7777-4888-9999-aaaaaaaaaaaa"
FILE_ID = "0b8f7c9e-1d2a-4b3c-8d4e-5f6a7b8c9d0e"
HUB_KEY = base64.b64encode(os.urandom(32)).decode()

VALUES = {
    "crypt4gh_public_keys": {"HD01": HUB_KEY},
    "storage_aliases": {"HD01": "http://127.0.0.1:9000"},
    "storage_labels": {"HD01": "Heidelberg"},
    "wps_api_url": "http://127.0.0.1:8080/wps/",
    "ucs_api_url": "http://127.0.0.1:8080/ucs",
    "dcs_api_url": "http://127.0.0.1:8080/ga4gh/drs/v1",
}

Handler = Callable[[httpx.Request], httpx.Response]


def mock_client(handler: Handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


class Seen(list[httpx.Request]):
    """Records requests and answers from a list of responses (the last one repeats)."""

    def __init__(self, *responses: httpx.Response) -> None:
        super().__init__()
        self.responses = list(responses)
        self.auth: list[str | None] = []  # the same request object may be resent

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.append(request)
        self.auth.append(request.headers.get("Authorization"))
        return self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]


class Tokens:
    """A WOT source recording its calls: ``force_new`` flags."""

    def __init__(self) -> None:
        self.calls: list[bool] = []

    async def __call__(self, force_new: bool) -> str:
        self.calls.append(force_new)
        return f"wot-{len(self.calls)}"


# --- WKVS -----------------------------------------------------------------------------


async def test_wkvs_values(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="GET", url=f"{WKVS}/values", json=VALUES)
    async with httpx.AsyncClient() as client:
        values = await WkvsClient(client, WKVS + "/").get_values()
    assert values.wps_api_url == "http://127.0.0.1:8080/wps"  # trailing slash stripped
    assert values.ucs_api_url == VALUES["ucs_api_url"]
    assert values.dcs_api_url == VALUES["dcs_api_url"]
    assert values.storage_labels == {"HD01": "Heidelberg"}
    assert values.data_hub_key("HD01") == base64.b64decode(HUB_KEY)
    with pytest.raises(KeyError):
        values.data_hub_key("HD02")


@pytest.mark.parametrize("missing", ["crypt4gh_public_keys", "wps_api_url", "dcs_api_url"])
async def test_wkvs_missing_required_value(missing: str) -> None:
    body = {k: v for k, v in VALUES.items() if k != missing}
    async with mock_client(Seen(httpx.Response(200, json=body))) as client:
        with pytest.raises(ServerResponseError, match=missing):
            await WkvsClient(client, WKVS).get_values()


async def test_wkvs_bad_body_and_status() -> None:
    async with mock_client(Seen(httpx.Response(200, text="<html>"))) as client:
        with pytest.raises(ServerResponseError):
            await WkvsClient(client, WKVS).get_values()
    async with mock_client(Seen(httpx.Response(500))) as client:
        with pytest.raises(ServerResponseError) as info:
            await WkvsClient(client, WKVS).get_values()
    assert info.value.status_code == 500


async def test_wkvs_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with mock_client(refuse) as client:
        with pytest.raises(ServiceUnreachableError, match=r"wkvs\.test"):
            await WkvsClient(client, WKVS).get_values()


# --- WPS ------------------------------------------------------------------------------

PACKAGE = {
    "type": "upload",
    "files": None,
    "research_data_upload_box_id": RDUB,
    "file_upload_box_id": FUB,
    "created": "2026-05-01T10:00:00Z",
    "expires": "2026-05-31T10:00:00Z",
}


async def test_wps_work_package_sends_wpat() -> None:
    seen = Seen(httpx.Response(200, json=PACKAGE))
    async with mock_client(seen) as client:
        package = await WpsClient(client, WPS, WP_ID, "A" * 24).get_work_package()
    assert package.type == "upload"
    assert package.file_upload_box_id == FUB
    assert str(seen[0].url) == f"{WPS}/work-packages/{WP_ID}"
    assert seen[0].headers["Authorization"] == "Bearer " + "A" * 24


async def test_wps_403_is_access_denied_with_detail() -> None:
    seen = Seen(httpx.Response(403, json={"detail": "Work package has expired"}))
    async with mock_client(seen) as client:
        wps = WpsClient(client, WPS, WP_ID, "A" * 24)
        with pytest.raises(AccessDeniedError, match="Work package has expired") as info:
            await wps.get_work_package()
        assert info.value.exit_code == 2
        assert "A" * 24 not in info.value.message
        with pytest.raises(AccessDeniedError, match="Work package has expired"):
            await wps.create_download_wot("GHGAF1")


def test_wps_repr_hides_token() -> None:
    wps = WpsClient(httpx.AsyncClient(), WPS, WP_ID, "B" * 24)
    assert "B" * 24 not in repr(wps)


async def test_wps_download_wot() -> None:
    seen = Seen(
        httpx.Response(201, json="sealed-wot", headers={"Cache-Control": "max-age=30, private"})
    )
    async with mock_client(seen) as client:
        wot = await WpsClient(client, WPS, WP_ID, "A" * 24).create_download_wot("GHGAF001")
    assert wot == ("sealed-wot", 30.0)
    assert seen[0].method == "POST"
    assert str(seen[0].url) == f"{WPS}/work-packages/{WP_ID}/files/GHGAF001/work-order-tokens"


async def test_wps_upload_wot() -> None:
    seen = Seen(httpx.Response(201, json="sealed", headers={"Cache-Control": "private"}))
    async with mock_client(seen) as client:
        wot = await WpsClient(client, WPS, WP_ID, "A" * 24).create_upload_wot(
            RDUB, "upload", file_id=FILE_ID
        )
    assert wot == ("sealed", None)
    assert str(seen[0].url) == f"{WPS}/work-packages/{WP_ID}/boxes/{RDUB}/work-order-tokens"
    assert json.loads(seen[0].content) == {"work_type": "upload", "alias": None, "file_id": FILE_ID}


async def test_wps_wot_not_a_json_string() -> None:
    async with mock_client(Seen(httpx.Response(201, json={"token": "x"}))) as client:
        with pytest.raises(ServerResponseError):
            await WpsClient(client, WPS, WP_ID, "A" * 24).create_download_wot("GHGAF1")
    async with mock_client(Seen(httpx.Response(200, json="x"))) as client:
        with pytest.raises(ServerResponseError):
            await WpsClient(client, WPS, WP_ID, "A" * 24).create_upload_wot(RDUB, "view")


# --- UCS ------------------------------------------------------------------------------


async def test_ucs_create_upload() -> None:
    seen = Seen(
        httpx.Response(201, json={"file_id": FILE_ID, "alias": "x.bam", "storage_alias": "HD01"})
    )
    tokens = Tokens()
    async with mock_client(seen) as client:
        result = await UcsClient(client, UCS + "/").create_upload(
            FUB,
            tokens,
            alias="x.bam",
            decrypted_size=12_582_912,
            encrypted_size=12_588_412,
            part_size=5_245_120,
            overwrite=False,
        )
    assert result == (FILE_ID, "HD01")
    request = seen[0]
    assert str(request.url) == f"{UCS}/boxes/{FUB}/uploads"
    assert request.headers["Authorization"] == "Bearer wot-1"
    assert request.headers["Accept"] == "application/json"
    assert request.extensions.get("ghga_retry") is False
    assert json.loads(request.content) == {
        "alias": "x.bam",
        "decrypted_size": 12_582_912,
        "encrypted_size": 12_588_412,
        "part_size": 5_245_120,
        "overwrite": False,
    }


async def test_ucs_create_already_exists() -> None:
    body = {
        "data": {"alias": "x"},
        "description": "A file upload with this alias already exists",
        "exception_id": "fileUploadAlreadyExists",
    }
    async with mock_client(Seen(httpx.Response(409, json=body))) as client:
        with pytest.raises(UploadRejectedError) as info:
            await UcsClient(client, UCS).create_upload(
                FUB,
                Tokens(),
                alias="x",
                decrypted_size=1,
                encrypted_size=153,
                part_size=5_245_120,
                overwrite=False,
            )
    error = info.value
    assert error.exception_id == "fileUploadAlreadyExists"
    assert error.status_code == 409
    assert "'x'" in error.message
    assert "--overwrite" in error.hint
    assert error.data == {"alias": "x"}


async def test_ucs_error_with_missing_data_keys_still_has_a_message() -> None:
    body = {"data": {}, "description": "full", "exception_id": "boxMaxSizeExceeded"}
    async with mock_client(Seen(httpx.Response(507, json=body))) as client:
        with pytest.raises(UploadRejectedError) as info:
            await UcsClient(client, UCS).create_upload(
                FUB,
                Tokens(),
                alias="x",
                decrypted_size=1,
                encrypted_size=153,
                part_size=5_245_120,
                overwrite=False,
            )
    assert info.value.exception_id == "boxMaxSizeExceeded"
    assert "full" in info.value.message.lower()


async def test_ucs_create_alias_mismatch() -> None:
    seen = Seen(
        httpx.Response(201, json={"file_id": FILE_ID, "alias": "other", "storage_alias": "HD01"})
    )
    async with mock_client(seen) as client:
        with pytest.raises(ServerResponseError, match="another alias"):
            await UcsClient(client, UCS).create_upload(
                FUB,
                Tokens(),
                alias="x",
                decrypted_size=1,
                encrypted_size=153,
                part_size=5_245_120,
                overwrite=False,
            )


async def test_wot_auth_refreshes_once_on_401() -> None:
    seen = Seen(
        httpx.Response(401, json={"detail": "Invalid authentication credentials"}),
        httpx.Response(200, json="https://s3.test/put?sig"),
    )
    tokens = Tokens()
    async with mock_client(seen) as client:
        url = await UcsClient(client, UCS).get_part_url(FUB, FILE_ID, 3, tokens)
    assert url == "https://s3.test/put?sig"
    assert tokens.calls == [False, True]
    assert seen.auth == ["Bearer wot-1", "Bearer wot-2"]
    assert str(seen[0].url) == f"{UCS}/boxes/{FUB}/uploads/{FILE_ID}/parts/3"


async def test_wot_auth_does_not_loop_on_repeated_401() -> None:
    seen = Seen(httpx.Response(401, json={"detail": "Invalid authentication credentials"}))
    tokens = Tokens()
    async with mock_client(seen) as client:
        with pytest.raises(UploadRejectedError) as info:
            await UcsClient(client, UCS).get_part_url(FUB, FILE_ID, 1, tokens)
    assert info.value.status_code == 401
    assert len(seen) == 2
    assert tokens.calls == [False, True]


async def test_wot_auth_no_refresh_on_success() -> None:
    tokens = Tokens()
    seen = Seen(httpx.Response(204))
    async with mock_client(seen) as client:
        response = await client.get("http://x.test/", auth=WorkOrderTokenAuth(tokens))
    assert response.status_code == 204
    assert tokens.calls == [False]


async def test_ucs_list_uploads_pages() -> None:
    def item(n: int, state: str = "inbox") -> dict[str, Any]:
        return {"id": f"id-{n}", "alias": f"a{n}", "state": state, "decrypted_size": n}

    seen = Seen(
        httpx.Response(200, json={"items": [item(1), item(2, "init")], "total_count": 3}),
        httpx.Response(200, json={"items": [item(3, "failed")], "total_count": 3}),
    )
    async with mock_client(seen) as client:
        items = await UcsClient(client, UCS).list_uploads(FUB, Tokens())
    assert [(i.alias, i.state) for i in items] == [
        ("a1", FileUploadState.INBOX),
        ("a2", FileUploadState.INIT),
        ("a3", FileUploadState.FAILED),
    ]
    assert [r.url.params["skip"] for r in seen] == ["0", "2"]


async def test_ucs_complete_and_delete() -> None:
    seen = Seen(httpx.Response(204))
    checksums = UploadChecksums("aa", "bb-1", ["bb"], ["cc"])
    async with mock_client(seen) as client:
        ucs = UcsClient(client, UCS)
        await ucs.complete_upload(FUB, FILE_ID, checksums, Tokens())
        await ucs.delete_upload(FUB, FILE_ID, Tokens())
    assert [r.method for r in seen] == ["PATCH", "DELETE"]
    assert json.loads(seen[0].content) == {
        "decrypted_sha256": "aa",
        "encrypted_md5": "bb-1",
        "encrypted_parts_md5": ["bb"],
        "encrypted_parts_sha256": ["cc"],
    }


async def test_ucs_complete_checksum_mismatch() -> None:
    body = {"data": {"file_id": FILE_ID}, "description": "x", "exception_id": "checksumMismatch"}
    async with mock_client(Seen(httpx.Response(400, json=body))) as client:
        with pytest.raises(UploadRejectedError) as info:
            await UcsClient(client, UCS).complete_upload(
                FUB, FILE_ID, UploadChecksums("a", "b-1", ["b"], ["c"]), Tokens()
            )
    assert info.value.exception_id == "checksumMismatch"


# --- DCS ------------------------------------------------------------------------------

DRS = {
    "access_methods": [
        {"access_url": {"url": "http://s3.test/outbox/x?Signature=abc"}, "type": "s3"}
    ],
    "checksums": [{"checksum": "ab" * 32, "type": "sha-256"}],
    "created_time": "2026-05-01T10:00:00Z",
    "id": "GHGAF001",
    "self_uri": "drs://host/GHGAF001",
    "size": 12_588_288,
}


async def test_dcs_staging() -> None:
    seen = Seen(httpx.Response(202, headers={"Retry-After": "42", "Cache-Control": "no-store"}))
    async with mock_client(seen) as client:
        result = await DcsClient(client, DCS).get_drs_object("GHGAF001", Tokens())
    assert isinstance(result, Staging)
    assert result.retry_after == 42.0
    assert str(seen[0].url) == f"{DCS}/objects/GHGAF001"


async def test_dcs_staging_without_retry_after() -> None:
    async with mock_client(Seen(httpx.Response(202))) as client:
        result = await DcsClient(client, DCS).get_drs_object("GHGAF001", Tokens())
    assert isinstance(result, Staging)
    assert result.retry_after == 5.0


async def test_dcs_drs_object() -> None:
    seen = Seen(httpx.Response(200, json=DRS, headers={"Cache-Control": "max-age=600, private"}))
    async with mock_client(seen) as client:
        result = await DcsClient(client, DCS).get_drs_object("GHGAF001", Tokens())
    assert isinstance(result, DrsObject)
    assert result.download_url == "http://s3.test/outbox/x?Signature=abc"
    assert result.size == 12_588_288
    assert result.sha256 == "ab" * 32
    assert result.max_age == 600.0
    assert "Signature" not in repr(result)


async def test_dcs_drs_object_without_s3_method() -> None:
    body = {**DRS, "access_methods": [{"access_url": {"url": "x"}, "type": "https"}]}
    async with mock_client(Seen(httpx.Response(200, json=body))) as client:
        with pytest.raises(ServerResponseError, match="no S3 access"):
            await DcsClient(client, DCS).get_drs_object("GHGAF001", Tokens())


async def test_dcs_not_found() -> None:
    body = {
        "exception_id": "noSuchObject",
        "description": "The requested DrsObject wasn't found",
        "data": {"object_id": "GHGAF001"},
    }
    async with mock_client(Seen(httpx.Response(404, json=body))) as client:
        with pytest.raises(FileNotDownloadableError) as info:
            await DcsClient(client, DCS).get_drs_object("GHGAF001", Tokens())
    assert info.value.exception_id == "noSuchObject"
    assert "GHGAF001" in info.value.message


ENVELOPE = os.urandom(124)
ENVELOPE_B64 = base64.b64encode(ENVELOPE).decode()


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, json=ENVELOPE_B64),
        httpx.Response(200, json={"content": ENVELOPE_B64}),
        httpx.Response(200, text=ENVELOPE_B64),
        httpx.Response(200, text=ENVELOPE_B64 + "\n"),
    ],
    ids=["json-string", "content-object", "raw-base64", "raw-base64-newline"],
)
async def test_dcs_envelope_formats(response: httpx.Response) -> None:
    seen = Seen(response)
    async with mock_client(seen) as client:
        envelope = await DcsClient(client, DCS).get_envelope("GHGAF001", Tokens())
    assert envelope == ENVELOPE
    assert str(seen[0].url) == f"{DCS}/objects/GHGAF001/envelopes"


async def test_dcs_envelope_not_base64() -> None:
    async with mock_client(Seen(httpx.Response(200, json="not base64!"))) as client:
        with pytest.raises(ServerResponseError, match="not valid base64"):
            await DcsClient(client, DCS).get_envelope("GHGAF001", Tokens())


# --- S3 -------------------------------------------------------------------------------

BODY = os.urandom(300_000)


def streamed(status: int, data: bytes, content_range: str | None = None) -> httpx.Response:
    """A response whose body is streamed like a real one (not pre-read)."""
    headers = {"Content-Range": content_range} if content_range else {}
    return httpx.Response(status, stream=httpx.ByteStream(data), headers=headers)


def ranged_s3(request: httpx.Request) -> httpx.Response:
    request.read()
    unit, _, spec = request.headers["Range"].partition("=")
    assert unit == "bytes"
    first, last = (int(v) for v in spec.split("-"))
    return streamed(206, BODY[first : last + 1], f"bytes {first}-{last}/{len(BODY)}")


async def test_get_range_fills_buffer_exactly() -> None:
    buffer = bytearray(b"\xff" * 100_010)
    async with mock_client(ranged_s3) as client:
        await ObjectStorageClient(client).get_range(S3, 1000, 101_000, memoryview(buffer)[:100_000])
    assert bytes(buffer[:100_000]) == BODY[1000:101_000]
    assert buffer[100_000:] == b"\xff" * 10


async def test_get_range_sends_range_header() -> None:
    seen = Seen(streamed(206, b"abc", "bytes 10-12/100"))
    async with mock_client(seen) as client:
        await ObjectStorageClient(client).get_range(S3, 10, 13, memoryview(bytearray(3)))
    assert seen[0].headers["Range"] == "bytes=10-12"
    assert seen[0].headers["Cache-Control"] == "no-store"


async def test_get_range_from_200_at_offset_zero_is_truncated() -> None:
    buffer = bytearray(10)
    async with mock_client(Seen(streamed(200, BODY))) as client:
        await ObjectStorageClient(client).get_range(S3, 0, 10, memoryview(buffer))
    assert bytes(buffer) == BODY[:10]


async def test_get_range_200_at_offset_is_refused() -> None:
    async with mock_client(Seen(streamed(200, BODY))) as client:
        with pytest.raises(ServerResponseError, match="ignored the byte range"):
            await ObjectStorageClient(client).get_range(S3, 5, 10, memoryview(bytearray(5)))


async def test_get_range_expired_url() -> None:
    async with mock_client(Seen(httpx.Response(403, text="<Error/>"))) as client:
        with pytest.raises(PresignedUrlExpired):
            await ObjectStorageClient(client).get_range(S3, 0, 10, memoryview(bytearray(10)))


async def test_get_range_short_body() -> None:
    async with mock_client(Seen(streamed(206, b"abc", "bytes 0-9/100"))) as client:
        with pytest.raises(ServiceUnreachableError) as info:
            await ObjectStorageClient(client).get_range(S3, 0, 10, memoryview(bytearray(10)))
    assert "Signature" not in info.value.message


async def test_get_range_too_long_body() -> None:
    async with mock_client(Seen(streamed(206, b"x" * 20, "bytes 0-9/100"))) as client:
        with pytest.raises(ServerResponseError, match="too many bytes"):
            await ObjectStorageClient(client).get_range(S3, 0, 10, memoryview(bytearray(10)))


@pytest.mark.parametrize(
    "content_range",
    [None, "bytes 65574-65583/300000", "bytes 10-18/300000", "bytes */300000", "garbage"],
    ids=["missing", "other-range", "shorter", "unsatisfied-form", "garbage"],
)
async def test_get_range_206_with_wrong_content_range_is_not_data(
    content_range: str | None,
) -> None:
    buffer = bytearray(b"\xee" * 10)
    async with mock_client(Seen(streamed(206, BODY[:10], content_range))) as client:
        with pytest.raises(ServiceUnreachableError, match="answered a request for bytes 10-19"):
            await ObjectStorageClient(client).get_range(S3, 10, 20, memoryview(buffer))
    # retried by the downloader (a ServiceUnreachableError), never written as data
    assert bytes(buffer) == b"\xee" * 10


async def test_get_range_206_content_range_is_case_and_space_tolerant() -> None:
    buffer = bytearray(3)
    async with mock_client(Seen(streamed(206, b"abc", " Bytes 10-12/*"))) as client:
        await ObjectStorageClient(client).get_range(S3, 10, 13, memoryview(buffer))
    assert bytes(buffer) == b"abc"


async def test_put_part_returns_etag() -> None:
    seen = Seen(httpx.Response(200, headers={"ETag": '"0123abcd"'}))
    data = os.urandom(2_500_000)  # more than one 1 MiB body chunk
    async with mock_client(seen) as client:
        etag = await ObjectStorageClient(client).put_part(S3, memoryview(data))
    assert etag == "0123abcd"
    assert seen[0].method == "PUT"
    assert seen[0].content == data
    assert seen[0].headers["Content-Length"] == str(len(data))
    assert "Authorization" not in seen[0].headers


class _PartBody:
    """A part produced while sent (core.ports.PartBody): 700 kB chunks, counted."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.iterations = 0

    @property
    def size(self) -> int:
        return len(self.data)

    async def _chunks(self) -> AsyncIterator[memoryview]:
        self.iterations += 1
        for start in range(0, len(self.data), 700_000):
            yield memoryview(self.data)[start : start + 700_000]

    def __aiter__(self) -> AsyncIterator[memoryview]:
        return self._chunks()


async def test_put_part_sends_a_body_produced_while_sent() -> None:
    seen = Seen(httpx.Response(200, headers={"ETag": '"0123abcd"'}))
    body = _PartBody(os.urandom(2_500_000))
    async with mock_client(seen) as client:
        etag = await ObjectStorageClient(client).put_part(S3, body)
    assert etag == "0123abcd"
    assert seen[0].content == body.data
    assert seen[0].headers["Content-Length"] == str(body.size)
    assert body.iterations == 1


async def test_put_part_without_etag() -> None:
    async with mock_client(Seen(httpx.Response(200))) as client:
        assert await ObjectStorageClient(client).put_part(S3, b"x") is None


async def test_put_part_expired_and_other_errors() -> None:
    async with mock_client(Seen(httpx.Response(403))) as client:
        with pytest.raises(PresignedUrlExpired):
            await ObjectStorageClient(client).put_part(S3, b"x")
    async with mock_client(Seen(httpx.Response(400))) as client:
        with pytest.raises(ServerResponseError) as info:
            await ObjectStorageClient(client).put_part(S3, b"x")
    assert info.value.status_code == 400
    assert "Signature" not in info.value.message


# --- unexpected bodies must become ServerResponseError (house rule 4) -----------------


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, json={k: v for k, v in DRS.items() if k != "size"}),
        httpx.Response(200, text="<html>gateway</html>"),
        httpx.Response(200, json=["not", "an", "object"]),
    ],
    ids=["no-size", "not-json", "json-list"],
)
async def test_dcs_malformed_drs_object(response: httpx.Response) -> None:
    async with mock_client(Seen(response)) as client:
        with pytest.raises(ServerResponseError):
            await DcsClient(client, DCS).get_drs_object("GHGAF001", Tokens())


_URL = "http://s3.test/outbox/x?Signature=abc"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"size": -1}, "size"),
        ({"size": "12 MB"}, "size"),
        ({"size": True}, "size"),
        ({"size": 1.5}, "size"),
        ({"checksums": [{"type": "sha-256", "checksum": 12345}]}, "checksum"),
        ({"checksums": [{"type": "sha-256", "checksum": _URL}]}, "checksum"),
        ({"checksums": [{"type": "sha-256", "checksum": "ab" * 31}]}, "checksum"),
        ({"checksums": "ab" * 32}, "checksums"),
        ({"checksums": ["ab" * 32]}, "checksums"),
        ({"access_methods": [{"type": "s3", "access_url": {"url": 42}}]}, "url"),
        ({"access_methods": [{"type": "s3", "access_url": _URL}]}, "url"),
        ({"access_methods": [{"type": "s3", "access_url": {"url": "file:///etc/x"}}]}, "url"),
        ({"access_methods": {"s3": _URL}}, "access_methods"),
    ],
)
async def test_dcs_malformed_field_names_field_not_value(
    change: dict[str, object], field: str
) -> None:
    body = {**DRS, **change}
    async with mock_client(Seen(httpx.Response(200, json=body))) as client:
        with pytest.raises(ServerResponseError) as info:
            await DcsClient(client, DCS).get_drs_object("GHGAF001", Tokens())
    text = info.value.message + info.value.hint
    assert "GHGAF001" in text and field in text
    for secret in ("Signature", "s3.test", "abc", "12345", "/etc/x", "12 MB"):
        assert secret not in text


async def test_dcs_drs_object_without_checksum_has_none() -> None:
    body = {**DRS, "checksums": []}
    async with mock_client(Seen(httpx.Response(200, json=body))) as client:
        result = await DcsClient(client, DCS).get_drs_object("GHGAF001", Tokens())
    assert isinstance(result, DrsObject)
    assert result.sha256 is None


async def test_ucs_list_uploads_skips_only_the_malformed_item() -> None:
    body = {
        "items": [
            {"id": "1", "state": "inbox"},
            {"id": "2", "alias": "b.bam", "state": "no-such-state"},
            {"id": "3", "alias": "c.bam", "state": "inbox", "decrypted_size": "big"},
            "not an object",
            {"id": "4", "alias": "d.bam", "state": "inbox"},
        ],
        "total_count": 5,
    }
    async with mock_client(Seen(httpx.Response(200, json=body))) as client:
        items = await UcsClient(client, UCS).list_uploads(FUB, Tokens())
    assert [item.alias for item in items] == ["d.bam"]


@pytest.mark.parametrize(
    "response",
    [httpx.Response(201, json={"alias": "x"}), httpx.Response(201, text="created")],
    ids=["no-file-id", "not-json"],
)
async def test_ucs_create_malformed_body(response: httpx.Response) -> None:
    async with mock_client(Seen(response)) as client:
        with pytest.raises(ServerResponseError):
            await UcsClient(client, UCS).create_upload(
                FUB,
                Tokens(),
                alias="x",
                decrypted_size=1,
                encrypted_size=153,
                part_size=5_245_120,
                overwrite=False,
            )


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>"),
        httpx.Response(200, json=["x"]),
    ],
    ids=["not-json", "json-list"],
)
async def test_ucs_list_uploads_malformed_body(response: httpx.Response) -> None:
    async with mock_client(Seen(response)) as client:
        with pytest.raises(ServerResponseError):
            await UcsClient(client, UCS).list_uploads(FUB, Tokens())

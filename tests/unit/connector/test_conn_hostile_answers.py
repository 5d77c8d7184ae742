"""Hostile answers, generated: every GHGA answer the client parses, fed arbitrary bodies.

For the well-known value service, the work package service, the upload and download
controllers and the object storage, hypothesis generates status codes, JSON bodies (the
valid shape with one field replaced, or anything at all), raw bytes and headers, and
sends them through the real adapters over ``httpx.MockTransport``. Whatever comes back:

* nothing but a :class:`~ghga_connector.errors.ConnectorError` escapes (no traceback);
* an error names the file (accession or alias) where the call is about one, and the
  server's request id where the answer carried a valid one;
* a malformed success answer (a 2xx whose body is not the documented shape) never
  passes as a result.

Deterministic (``derandomize=True``) and bounded (``max_examples``), no deadline.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey
from tests.unit.connector.test_conn_download import Archive, FakeDcs, FakeStorage
from tests.unit.connector.test_conn_handler import DOWNLOAD_PACKAGE, FakeAccessor, FakeReporter

from ghga_connector.adapters.services import (
    DcsClient,
    ObjectStorageClient,
    Staging,
    UcsClient,
    WkvsClient,
    WpsClient,
)
from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.core.download import Downloader
from ghga_connector.core.ports import DownloadJob, FileStagerBase
from ghga_connector.errors import BodyBrokenError, ConnectorError
from ghga_connector.models import DrsObject, Outcome, UploadChecksums

ACCESSION = "GHGAF12345678901234"
ALIAS = "tumor.bam"
FILE_ID = "0b8f7c9e-1d2a-4b3c-8d4e-5f6a7b8c9d0e"
BOX = "66666666-7777-4888-9999-aaaaaaaaaaaa"
WP_ID = "3d8a1b2c-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
REQUEST_ID = re.compile(r"[A-Za-z0-9._:{}-]{1,100}")
HUB_KEY = base64.b64encode(os.urandom(32)).decode()
ENVELOPE = base64.b64encode(b"crypt4gh" + bytes(116)).decode()

HOSTILE = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    # no shrinking: a failure is reported as generated (shrinking these takes minutes)
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


async def _token(force_new: bool) -> str:
    return "wot"


@dataclass(frozen=True)
class Answer:
    """One documented answer: the call, its success status and a valid body."""

    name: str
    call: Callable[[httpx.AsyncClient], Awaitable[Any]]
    ok: int
    body: Any
    about: str | None  # the file the call is about, which an error must name
    ghga: bool = True  # a GHGA service (request ids apply), not the object storage


def _drs_body() -> dict[str, Any]:
    return {
        "id": ACCESSION,
        "self_uri": f"drs://localhost/{ACCESSION}",
        "size": 1000,
        "created_time": "2026-05-01T10:00:00Z",
        "checksums": [{"type": "sha-256", "checksum": "a" * 64}],
        "access_methods": [
            {"type": "s3", "access_url": {"url": "http://s3.test/outbox/x?X-Amz-Signature=s"}}
        ],
    }


ANSWERS = [
    Answer(
        "wkvs values",
        lambda c: WkvsClient(c, "http://wkvs.test/.well-known").get_values(),
        200,
        {
            "crypt4gh_public_keys": {"HD01": HUB_KEY},
            "storage_aliases": {"HD01": "http://127.0.0.1:9000"},
            "storage_labels": {"HD01": "Heidelberg"},
            "wps_api_url": "http://api.test/wps",
            "ucs_api_url": "http://api.test/ucs",
            "dcs_api_url": "http://api.test/ga4gh/drs/v1",
        },
        None,
    ),
    Answer(
        "wps work package",
        lambda c: WpsClient(c, "http://api.test/wps", WP_ID, "wpat").get_work_package(),
        200,
        {
            "type": "download",
            "files": {ACCESSION: ".bam"},
            "created": "2026-05-01T10:00:00Z",
            "expires": "2026-05-31T10:00:00Z",
        },
        None,
    ),
    Answer(
        "wps download wot",
        lambda c: WpsClient(c, "http://api.test/wps", WP_ID, "wpat").create_download_wot(ACCESSION),
        201,
        "sealed-wot",
        ACCESSION,
    ),
    Answer(
        "wps upload wot",
        lambda c: WpsClient(c, "http://api.test/wps", WP_ID, "wpat").create_upload_wot(
            BOX, "create", alias=ALIAS
        ),
        201,
        "sealed-wot",
        None,
    ),
    Answer(
        "ucs list",
        lambda c: UcsClient(c, "http://api.test/ucs").list_uploads(BOX, _token),
        200,
        [],
        None,
    ),
    Answer(
        "ucs create",
        lambda c: UcsClient(c, "http://api.test/ucs").create_upload(
            BOX,
            _token,
            alias=ALIAS,
            decrypted_size=1000,
            encrypted_size=1152,
            part_size=5 * 1024 * 1024,
            overwrite=False,
        ),
        201,
        {"file_id": FILE_ID, "storage_alias": "HD01", "alias": ALIAS},
        ALIAS,
    ),
    Answer(
        "ucs part url",
        lambda c: UcsClient(c, "http://api.test/ucs").get_part_url(BOX, FILE_ID, 1, _token),
        200,
        "http://s3.test/inbox/x?X-Amz-Signature=s",
        None,
    ),
    Answer(
        "ucs complete",
        lambda c: UcsClient(c, "http://api.test/ucs").complete_upload(
            BOX,
            FILE_ID,
            UploadChecksums(
                decrypted_sha256="a" * 64,
                encrypted_md5="b" * 32 + "-1",
                encrypted_parts_md5=["b" * 32],
                encrypted_parts_sha256=["c" * 64],
            ),
            _token,
        ),
        204,
        None,
        None,
    ),
    Answer(
        "ucs delete",
        lambda c: UcsClient(c, "http://api.test/ucs").delete_upload(BOX, FILE_ID, _token),
        204,
        None,
        None,
    ),
    Answer(
        "dcs drs object",
        lambda c: DcsClient(c, "http://api.test/ga4gh/drs/v1").get_drs_object(ACCESSION, _token),
        200,
        _drs_body(),
        ACCESSION,
    ),
    Answer(
        "dcs envelope",
        lambda c: DcsClient(c, "http://api.test/ga4gh/drs/v1").get_envelope(ACCESSION, _token),
        200,
        ENVELOPE,
        ACCESSION,
    ),
    Answer(
        "s3 put part",
        lambda c: ObjectStorageClient(c).put_part("http://s3.test/inbox/x?sig=s", b"x" * 100),
        200,
        None,
        None,
        ghga=False,
    ),
    Answer(
        "s3 range",
        lambda c: ObjectStorageClient(c).get_range(
            "http://s3.test/outbox/x?sig=s", 0, 100, memoryview(bytearray(100))
        ),
        206,
        None,
        None,
        ghga=False,
    ),
]


def _replace_one_field(body: Any, data: st.DataObject) -> Any:
    """The valid body with one (possibly nested) value replaced by anything."""
    if isinstance(body, dict) and body:
        key = data.draw(st.sampled_from(sorted(body)))
        changed = dict(body)
        if data.draw(st.booleans()):
            changed[key] = _replace_one_field(body[key], data)
        elif data.draw(st.booleans()):
            del changed[key]
        else:
            changed[key] = data.draw(json_values)
        return changed
    if isinstance(body, list) and body:
        index = data.draw(st.integers(0, len(body) - 1))
        changed_list = list(body)
        changed_list[index] = _replace_one_field(body[index], data)
        return changed_list
    return data.draw(json_values)


header_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


@dataclass
class Drawn:
    status: int
    content: bytes
    headers: dict[str, str]
    valid_body: bool


def _draw(answer: Answer, data: st.DataObject) -> Drawn:
    status = data.draw(
        st.sampled_from([answer.ok, 200, 201, 202, 204, 206, 400, 401, 403, 404, 409, 429, 500])
        | st.integers(100, 599),
        label="status",
    )
    kind = data.draw(st.sampled_from(["valid", "one field", "any json", "bytes"]), label="kind")
    if kind == "valid":
        content = b"" if answer.body is None else json.dumps(answer.body).encode()
    elif kind == "one field":
        content = json.dumps(_replace_one_field(answer.body, data)).encode()
    elif kind == "any json":
        content = json.dumps(data.draw(json_values)).encode()
    else:
        content = data.draw(st.binary(max_size=64))
    headers = data.draw(
        st.dictionaries(
            st.sampled_from(
                ["Retry-After", "Cache-Control", "Content-Type", "ETag", "Content-Range"]
            ),
            header_values,
            max_size=3,
        ),
        label="headers",
    )
    request_id = data.draw(st.none() | st.just("req-4f2a.9") | header_values, label="request id")
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    return Drawn(status, content, headers, kind == "valid")


def _exchange(answer: Answer, drawn: Drawn) -> tuple[Any, BaseException | None]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(drawn.status, content=drawn.content, headers=drawn.headers)

    async def go() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await answer.call(client)

    try:
        return asyncio.run(go()), None
    except BaseException as error:  # the property inspects every escape
        return None, error


def _check(answer: Answer, drawn: Drawn) -> None:
    result, error = _exchange(answer, drawn)
    if error is not None:
        assert isinstance(error, ConnectorError), (
            f"{answer.name}: {type(error).__name__}: {error} escaped"
        )
        text = f"{error.message} {error.hint}"
        if answer.about is not None:
            assert answer.about in text, f"{answer.name}: the error does not name the file: {text}"
        request_id = drawn.headers.get("X-Request-Id")
        if answer.ghga and request_id and REQUEST_ID.fullmatch(request_id):
            assert request_id in text, f"{answer.name}: no request id in: {text}"
        return
    # Success: only for a success status, and never for a body of the wrong shape.
    assert 200 <= drawn.status < 300, f"{answer.name}: HTTP {drawn.status} passed as success"
    if isinstance(result, Staging):
        assert drawn.status == 202
        return
    if answer.name == "ucs create":
        file_id, storage_alias = result
        assert isinstance(file_id, str) and file_id and isinstance(storage_alias, str)
    if isinstance(result, DrsObject):
        assert result.accession == ACCESSION
        assert result.size >= 0
        assert result.download_url.startswith(("http://", "https://"))
        assert result.sha256 is None or re.fullmatch(r"[0-9a-fA-F]{64}", result.sha256)


@HOSTILE
@given(data=st.data(), which=st.sampled_from(range(len(ANSWERS))))
def test_no_answer_escapes_as_anything_but_a_connector_error(
    data: st.DataObject, which: int
) -> None:
    answer = ANSWERS[which]
    _check(answer, _draw(answer, data))


@HOSTILE
@given(data=st.data())
def test_every_answer_kind_is_covered_per_call(data: st.DataObject) -> None:
    """Each call at least once per run with a malformed 2xx body (the fields replaced)."""
    for answer in ANSWERS:
        drawn = _draw(answer, data)
        drawn.status = answer.ok
        _check(answer, drawn)


# --- through the download engine: a hostile DRS object is never "done" ---------------


@settings(max_examples=40, derandomize=True, deadline=None, phases=HOSTILE.phases)
@given(data=st.data())
def test_a_hostile_drs_object_never_ends_done_unless_it_is_true(
    data: st.DataObject, tmp_path_factory: Any
) -> None:
    """A DRS object with a field replaced: parsed, then downloaded against the real body.

    The download may only end ``done`` if the object's size and checksum are the
    archived file's, and ``unverified`` only without a checksum; otherwise ``failed``.
    """
    secret = PrivateKey.generate()
    keys = KeyPair(public=bytes(secret.public_key), secret=bytes(secret))
    archive = Archive(keys)
    true_body = {
        **_drs_body(),
        "size": len(archive.body),
        "checksums": [{"type": "sha-256", "checksum": archive.sha256}],
    }
    body = _replace_one_field(true_body, data)
    drawn = Drawn(200, json.dumps(body).encode(), {}, False)
    answer = ANSWERS[[a.name for a in ANSWERS].index("dcs drs object")]
    drs, error = _exchange(answer, drawn)
    if error is not None:
        assert isinstance(error, ConnectorError)
        return
    assert isinstance(drs, DrsObject)

    class Stager(FileStagerBase):
        async def staged_object(self, accession: str, *, force_new: bool = False) -> DrsObject:
            return drs

        async def probe(self, accession: str) -> DrsObject | None:
            return drs

    class BoundedStorage(FakeStorage):
        async def get_range(self, url: str, start: int, stop: int, into: memoryview) -> None:
            chunk = self.archive.body[start:stop]
            into[: len(chunk)] = chunk
            if len(chunk) != stop - start:
                raise BodyBrokenError(f"short range: {len(chunk)} of {stop - start} bytes")

    target = tmp_path_factory.mktemp("out") / "GHGAF001.bam.c4gh"

    async def go() -> Any:
        with ThreadPoolExecutor(max_workers=2) as executor:
            downloader = Downloader(
                accessor=FakeAccessor(DOWNLOAD_PACKAGE),
                dcs=FakeDcs(archive),
                storage=BoundedStorage(archive),
                stager=Stager(),
                keys=keys,
                reporter=FakeReporter(),
                executor=executor,
                part_size=2 * 65564,
                concurrency=2,
            )
            return await downloader.download(DownloadJob(ACCESSION, ".bam", target, False), drs)

    outcome = asyncio.run(go())
    true_size = drs.size == len(archive.body)
    if outcome.outcome is Outcome.DONE:
        assert true_size and drs.sha256 == archive.sha256
        assert target.read_bytes()[124:] == archive.body
    elif outcome.outcome is Outcome.UNVERIFIED:
        assert true_size and drs.sha256 is None
    else:
        assert outcome.outcome is Outcome.FAILED, outcome
        assert not target.exists()

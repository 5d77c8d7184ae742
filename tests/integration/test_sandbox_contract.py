"""Raw-HTTP checks of the sandbox against the API contract (§6.2 and the §3 error rows).

No ghga-connector code is used: requests are built with httpx from the contract, and
tokens are opened with a tiny SealedBox/Crypt4GH helper and the sandbox's ``user.sec``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import crypt4gh.lib
import httpx
import pytest
from crypt4gh.keys import get_private_key, get_public_key
from jwcrypto import jwk, jws
from nacl.public import PrivateKey, SealedBox

from conftest import start_sandbox

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
SEGMENT = 65536
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


# --- helpers -----------------------------------------------------------------------------


def encrypted_size(n: int) -> int:
    return n + 28 * -(-n // SEGMENT) + 124


def c4gh_encrypt(data: bytes, user_sk: bytes, recipient_pk: bytes) -> bytes:
    out = io.BytesIO()
    crypt4gh.lib.encrypt([(0, user_sk, recipient_pk)], io.BytesIO(data), out)
    return out.getvalue()


def multipart_etag(parts: list[bytes]) -> str:
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f"{hashlib.md5(digests).hexdigest()}-{len(parts)}"


def assert_domain_error(
    response: httpx.Response, status: int, exception_id: str, data_keys: set[str] | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"data", "description", "exception_id"}
    assert body["exception_id"] == exception_id
    if data_keys is not None:
        assert set(body["data"]) == data_keys
    return dict(body["data"])


@dataclass
class Package:
    id: str
    wpat: str
    rdub_id: str
    fub_id: str
    access_token: str


class Api:
    """Raw HTTP against one sandbox, as the user of ``user.pub``/``user.sec``."""

    def __init__(self, sandbox: Any) -> None:
        self.sb = sandbox
        self.user_sk = get_private_key(str(sandbox.user_sec), lambda: "")
        self.user_pk = get_public_key(str(sandbox.user_pub))
        self.key_b64 = base64.b64encode(self.user_pk).decode()
        self.http = httpx.Client(timeout=60)
        keys = sandbox.admin("GET", "/keys").json()
        self.wps_public = jwk.JWK(**keys["wps_public_jwk"])
        self.hub_pk = base64.b64decode(keys["datahub_public_keys"]["HD01"])

    def open_sealed(self, sealed_b64: str) -> bytes:
        return SealedBox(PrivateKey(self.user_sk)).decrypt(base64.b64decode(sealed_b64))

    def new_package(self, max_size: int | None = None) -> Package:
        body: dict[str, Any] = {"user_public_key": self.key_b64}
        if max_size is not None:
            body["max_size"] = max_size
        response = self.sb.admin("POST", "/upload-boxes", body)
        assert response.status_code == 201, response.text
        info = response.json()
        wp = info["work_package"]
        wp_id, sealed = wp["access_token"].split(":")
        return Package(
            id=wp_id,
            wpat=self.open_sealed(sealed).decode(),
            rdub_id=info["research_data_upload_box_id"],
            fub_id=info["file_upload_box_id"],
            access_token=wp["access_token"],
        )

    def wps(
        self, method: str, path: str, wpat: str | None, json_body: Any = None
    ) -> httpx.Response:
        headers = {} if wpat is None else {"Authorization": f"Bearer {wpat}"}
        return self.http.request(
            method, f"{self.sb.wps_api_url}{path}", headers=headers, json=json_body
        )

    def wot(
        self, pkg: Package, work_type: str, *, alias: str | None = None, file_id: str | None = None
    ) -> str:
        response = self.wps(
            "POST",
            f"/work-packages/{pkg.id}/boxes/{pkg.rdub_id}/work-order-tokens",
            pkg.wpat,
            {"work_type": work_type, "alias": alias, "file_id": file_id},
        )
        assert response.status_code == 201, response.text
        return self.open_sealed(response.json()).decode()

    def mint(self, claims: dict[str, Any], lifetime: int | None = None) -> str:
        body: dict[str, Any] = {"claims": {"user_public_crypt4gh_key": self.key_b64, **claims}}
        if lifetime is not None:
            body["lifetime"] = lifetime
        return str(self.sb.admin("POST", "/work-order-tokens", body).json()["token"])

    def ucs(
        self, method: str, path: str, token: str | None, json_body: Any = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(
            method, f"{self.sb.ucs_api_url}{path}", headers=headers, json=json_body, **kwargs
        )

    def dcs(self, path: str, token: str | None) -> httpx.Response:
        headers = {"Accept": "application/json", "Cache-Control": "min-fresh=3"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.get(f"{self.sb.dcs_api_url}{path}", headers=headers)

    def create(
        self,
        pkg: Package,
        alias: str,
        decrypted: int,
        encrypted: int | None = None,
        part_size: int = 5 * MiB,
        **extra: Any,
    ) -> httpx.Response:
        body = {
            "alias": alias,
            "decrypted_size": decrypted,
            "encrypted_size": encrypted if encrypted is not None else encrypted_size(decrypted),
            "part_size": part_size,
            **extra,
        }
        return self.ucs(
            "POST", f"/boxes/{pkg.fub_id}/uploads", self.wot(pkg, "create", alias=alias), body
        )

    def part_url(self, pkg: Package, file_id: str, part_no: int) -> httpx.Response:
        return self.ucs(
            "GET",
            f"/boxes/{pkg.fub_id}/uploads/{file_id}/parts/{part_no}",
            self.wot(pkg, "upload", file_id=file_id),
        )

    def put_parts(self, pkg: Package, file_id: str, parts: list[bytes]) -> None:
        for number, part in enumerate(parts, start=1):
            url = self.part_url(pkg, file_id, number)
            assert url.status_code == 200, url.text
            put = self.http.put(
                url.json(), content=part, headers={"X-Request-Id": str(uuid.uuid4())}
            )
            assert put.status_code == 200, put.text

    def complete(
        self,
        pkg: Package,
        file_id: str,
        parts: list[bytes],
        plaintext_sha256: str,
        encrypted_md5: str | None = None,
    ) -> httpx.Response:
        body = {
            "decrypted_sha256": plaintext_sha256,
            "encrypted_md5": encrypted_md5 or multipart_etag(parts),
            "encrypted_parts_md5": [hashlib.md5(p).hexdigest() for p in parts],
            "encrypted_parts_sha256": [hashlib.sha256(p).hexdigest() for p in parts],
        }
        return self.ucs(
            "PATCH",
            f"/boxes/{pkg.fub_id}/uploads/{file_id}",
            self.wot(pkg, "close", file_id=file_id),
            body,
        )

    def delete(self, pkg: Package, file_id: str) -> httpx.Response:
        return self.ucs(
            "DELETE",
            f"/boxes/{pkg.fub_id}/uploads/{file_id}",
            self.wot(pkg, "delete", file_id=file_id),
        )

    def listing(self, pkg: Package, **params: Any) -> httpx.Response:
        return self.ucs("GET", f"/boxes/{pkg.fub_id}/uploads", self.wot(pkg, "view"), params=params)

    def upload(
        self,
        pkg: Package,
        alias: str,
        data: bytes,
        part_size: int = 5 * MiB,
        sha256: str | None = None,
    ) -> str:
        """The whole upload flow; returns the file id (state ``inbox``)."""
        encrypted = c4gh_encrypt(data, self.user_sk, self.hub_pk)
        assert len(encrypted) == encrypted_size(len(data))
        created = self.create(pkg, alias, len(data), len(encrypted), part_size)
        assert created.status_code == 201, created.text
        file_id = created.json()["file_id"]
        parts = [encrypted[i : i + part_size] for i in range(0, len(encrypted), part_size)]
        self.put_parts(pkg, file_id, parts)
        done = self.complete(pkg, file_id, parts, sha256 or hashlib.sha256(data).hexdigest())
        assert done.status_code == 204, done.text
        return str(file_id)

    def state_of(self, pkg: Package, file_id: str) -> str:
        items = self.listing(pkg, limit=1000).json()["items"]
        return str(next(i["state"] for i in items if i["id"] == file_id))

    def download_package(self, accessions: list[str] | None = None) -> Package:
        response = self.sb.admin(
            "POST",
            "/work-packages",
            {"type": "download", "user_public_key": self.key_b64, "accessions": accessions},
        )
        assert response.status_code == 201, response.text
        wp_id, sealed = response.json()["access_token"].split(":")
        return Package(
            wp_id, self.open_sealed(sealed).decode(), "", "", response.json()["access_token"]
        )

    def download_wot(self, pkg: Package, accession: str) -> str:
        response = self.wps(
            "POST", f"/work-packages/{pkg.id}/files/{accession}/work-order-tokens", pkg.wpat
        )
        assert response.status_code == 201, response.text
        return self.open_sealed(response.json()).decode()

    def archive_box(self, pkg: Package) -> list[dict[str, Any]]:
        assert self.sb.admin("POST", f"/boxes/{pkg.fub_id}/interrogate").status_code == 200
        assert (
            self.sb.admin("POST", f"/boxes/{pkg.fub_id}/lock", {"force": False}).status_code == 200
        )
        response = self.sb.admin("POST", f"/boxes/{pkg.fub_id}/archive")
        assert response.status_code == 200, response.text
        return list(response.json())


@pytest.fixture
def api(sandbox_session: Any) -> Any:
    sandbox_session.admin("DELETE", "/faults")
    client = Api(sandbox_session)
    yield client
    client.http.close()
    sandbox_session.admin("DELETE", "/faults")


def jws_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    header, payload, signature = token.split(".")

    def b64url(value: str) -> bytes:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))

    return json.loads(b64url(header)), json.loads(b64url(payload)), b64url(signature)


# --- 1, 2: WKVS and health ----------------------------------------------------------------


def test_wkvs_values(api: Api) -> None:
    response = httpx.get(f"{api.sb.wkvs_api_url}/values")
    assert response.status_code == 200
    values = response.json()
    assert {"crypt4gh_public_keys", "wps_api_url", "ucs_api_url", "dcs_api_url"} <= set(values)
    assert values["wps_api_url"] == f"{api.sb.url}/wps"
    assert values["ucs_api_url"] == f"{api.sb.url}/ucs"
    assert values["dcs_api_url"] == f"{api.sb.url}/ga4gh/drs/v1"
    for alias, key in values["crypt4gh_public_keys"].items():
        assert len(base64.b64decode(key, validate=True)) == 32
        assert alias in values["storage_labels"]
    assert values["storage_labels"] == {"HD01": "Heidelberg"}
    one = httpx.get(f"{api.sb.wkvs_api_url}/values/dcs_api_url")
    assert one.status_code == 200 and one.json() == {"dcs_api_url": values["dcs_api_url"]}
    missing = httpx.get(f"{api.sb.wkvs_api_url}/values/nope")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "The value nope is not configured"}


async def test_health_answers_while_the_event_loop_is_blocked(api: Api) -> None:
    # a blocking call inside a running event loop, as 4.0.1's health check does
    assert asyncio.get_running_loop().is_running()
    for base in (api.sb.wkvs_api_url, api.sb.wps_api_url, api.sb.ucs_api_url, api.sb.dcs_api_url):
        response = httpx.get(f"{base}/health", timeout=5)  # noqa: ASYNC210 - blocking on purpose
        assert response.status_code == 200
        assert response.json() == {"status": "OK"}


def test_request_id_is_echoed(api: Api) -> None:
    request_id = str(uuid.uuid4())
    response = httpx.get(f"{api.sb.wkvs_api_url}/values", headers={"X-Request-Id": request_id})
    assert response.headers["X-Request-Id"] == request_id


@pytest.mark.parametrize("sent", [None, "", "abc", "not-a-uuid-" + "x" * 30])
def test_every_answer_has_a_request_id(api: Api, sent: str | None) -> None:
    """Issue 15 (1): like ghga-service-commons, a missing or invalid X-Request-Id is
    replaced by a new UUID4, on every service and on errors too."""
    headers = {} if sent is None else {"X-Request-Id": sent}
    for url in (
        f"{api.sb.wkvs_api_url}/values",
        f"{api.sb.wps_api_url}/health",
        f"{api.sb.ucs_api_url}/boxes/{uuid.uuid4()}/uploads",  # 401
        f"{api.sb.dcs_api_url}/objects/GHGAF1",  # 401
    ):
        answered = httpx.get(url, headers=headers).headers["X-Request-Id"]
        assert UUID4.match(answered), url
        assert answered != sent


# --- 3-7: WPAT, WPS and WOTs ----------------------------------------------------------------


def test_access_token_format(api: Api) -> None:
    token = api.sb.upload_wpat_file.read_text().strip()
    assert len(token) == 133
    wp_id, sealed = token.split(":")
    assert UUID4.match(wp_id)
    assert len(sealed) == 96 and len(base64.b64decode(sealed)) == 72
    plain = api.open_sealed(sealed).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{24}", plain)


def test_upload_work_package_details(api: Api) -> None:
    pkg = api.new_package()
    response = api.wps("GET", f"/work-packages/{pkg.id}", pkg.wpat)
    assert response.status_code == 200
    body = response.json()
    assert body["type"] == "upload"
    assert body["files"] == {}
    assert body["research_data_upload_box_id"] == pkg.rdub_id
    assert body["file_upload_box_id"] == pkg.fub_id
    assert set(body) == {
        "type",
        "files",
        "research_data_upload_box_id",
        "file_upload_box_id",
        "created",
        "expires",
    }


def test_wps_access_failures_are_403(api: Api) -> None:
    pkg = api.new_package()
    path = f"/work-packages/{pkg.id}"
    missing = api.wps("GET", path, None)
    assert missing.status_code == 401
    assert missing.json() == {"detail": "Not authenticated"}
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    unknown = api.wps("GET", f"/work-packages/{uuid.uuid4()}", pkg.wpat)
    assert (unknown.status_code, unknown.json()) == (403, {"detail": "Work package not found"})
    wrong = api.wps("GET", path, "A" * 24)
    assert (wrong.status_code, wrong.json()) == (
        403,
        {"detail": "Invalid work package access token"},
    )
    assert api.wps("GET", f"/work-packages/{uuid.uuid1()}", pkg.wpat).status_code == 422

    api.sb.admin("POST", "/faults", {"access_check_error": 1})
    failed = api.wps("GET", path, pkg.wpat)
    assert (failed.status_code, failed.json()) == (
        403,
        {"detail": "Failed to check upload box access permission"},
    )

    assert api.sb.admin("POST", f"/work-packages/{pkg.id}/revoke").status_code == 200
    revoked = api.wps(
        "POST", f"{path}/boxes/{pkg.rdub_id}/work-order-tokens", pkg.wpat, {"work_type": "view"}
    )
    assert (revoked.status_code, revoked.json()) == (
        403,
        {"detail": "Upload access has been revoked"},
    )
    api.sb.admin("POST", f"/work-packages/{pkg.id}/restore")
    assert api.wps("GET", path, pkg.wpat).status_code == 200

    assert api.sb.admin("POST", f"/work-packages/{pkg.id}/expire").status_code == 200
    expired = api.wps("GET", path, pkg.wpat)
    assert (expired.status_code, expired.json()) == (403, {"detail": "Work package has expired"})


def test_upload_wot_is_sealed_es256_jws(api: Api) -> None:
    pkg = api.new_package()
    response = api.wps(
        "POST",
        f"/work-packages/{pkg.id}/boxes/{pkg.rdub_id}/work-order-tokens",
        pkg.wpat,
        {"work_type": "create", "alias": "a.bam", "file_id": None},
    )
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "max-age=30, private"
    assert response.text.startswith('"')
    token = api.open_sealed(response.json()).decode()
    header, claims, signature = jws_parts(token)
    assert header == {"alg": "ES256"}
    assert len(signature) == 64  # raw r‖s, not DER
    verifier = jws.JWS()
    verifier.deserialize(token)
    verifier.verify(api.wps_public, alg="ES256")
    assert claims["work_type"] == "create"
    assert claims["alias"] == "a.bam"
    assert claims["box_id"] == pkg.fub_id  # the FUB, not the RDUB
    assert claims["user_public_crypt4gh_key"] == api.key_b64
    assert claims["exp"] == claims["iat"] + 30
    assert abs(claims["iat"] - time.time()) < 10
    for work_type, extra in (("upload", "file_id"), ("close", "file_id"), ("delete", "file_id")):
        file_id = str(uuid.uuid4())
        _, claims, _ = jws_parts(api.wot(pkg, work_type, file_id=file_id))
        assert (claims["work_type"], claims[extra], claims["box_id"]) == (
            work_type,
            file_id,
            pkg.fub_id,
        )
    _, view, _ = jws_parts(api.wot(pkg, "view"))
    assert set(view) == {"work_type", "box_id", "user_public_crypt4gh_key", "iat", "exp"}


def test_upload_wot_request_errors(api: Api) -> None:
    pkg = api.new_package()
    wrong_box = api.wps(
        "POST",
        f"/work-packages/{pkg.id}/boxes/{pkg.fub_id}/work-order-tokens",
        pkg.wpat,
        {"work_type": "view"},
    )
    assert (wrong_box.status_code, wrong_box.json()) == (
        403,
        {"detail": "Specified box ID is incorrect."},
    )
    base = f"/work-packages/{pkg.id}/boxes/{pkg.rdub_id}/work-order-tokens"
    assert (
        api.wps(
            "POST", base, pkg.wpat, {"work_type": "create", "alias": None, "file_id": None}
        ).status_code
        == 422
    )
    for work_type in ("upload", "close", "delete"):
        assert (
            api.wps(
                "POST", base, pkg.wpat, {"work_type": work_type, "alias": "x", "file_id": None}
            ).status_code
            == 422
        )
    assert (
        api.wps(
            "POST", base, pkg.wpat, {"work_type": "upload", "file_id": str(uuid.uuid1())}
        ).status_code
        == 422
    )
    assert api.wps("POST", base, pkg.wpat, {"work_type": "fly"}).status_code == 422
    download = api.wps(
        "POST", f"/work-packages/{pkg.id}/files/GHGAF00000000000001/work-order-tokens", pkg.wpat
    )
    assert (download.status_code, download.json()) == (
        403,
        {"detail": "Work package type must be DOWNLOAD to obtain a download access WOT"},
    )


# --- 8, 9: UCS/DCS authentication, ids, listing --------------------------------------------


def test_ucs_and_dcs_authentication(api: Api) -> None:
    pkg = api.new_package()
    path = f"/boxes/{pkg.fub_id}/uploads"
    for header in (None, "Basic abc"):
        headers = {} if header is None else {"Authorization": header}
        for url in (
            f"{api.sb.ucs_api_url}{path}",
            f"{api.sb.dcs_api_url}/objects/GHGAF00000000000001",
        ):
            response = httpx.get(url, headers=headers)
            assert response.status_code == 401
            assert response.json() == {"detail": "Not authenticated"}
            # issue 15 (2): UCS uses HTTPBearer(auto_error=False) and its own 401
            if url.startswith(api.sb.ucs_api_url):
                assert "WWW-Authenticate" not in response.headers
            else:
                assert response.headers["WWW-Authenticate"] == "Bearer"
    wps = api.wps("GET", f"/work-packages/{pkg.id}", None)
    assert (wps.status_code, wps.headers["WWW-Authenticate"]) == (401, "Bearer")
    view = api.wot(pkg, "view")
    assert api.ucs("GET", path, view).status_code == 200
    invalid = {"detail": "Invalid authentication credentials"}
    tampered = view[:-4] + ("AAAA" if not view.endswith("AAAA") else "BBBB")
    expired = api.mint({"work_type": "view", "box_id": pkg.fub_id}, lifetime=-65)
    wrong_type = api.wot(pkg, "create", alias="x")
    non_uuid4 = api.mint({"work_type": "view", "box_id": str(uuid.uuid1())})
    bad_key = api.mint(
        {"work_type": "view", "box_id": pkg.fub_id, "user_public_crypt4gh_key": "abc"}
    )
    missing_claim = api.mint({"work_type": "view"})
    for token in (tampered, expired, wrong_type, non_uuid4, bad_key, missing_claim, "not.a.jws"):
        response = api.ucs("GET", path, token)
        assert (response.status_code, response.json()) == (401, invalid), token
    other_box = api.new_package()
    mismatch = api.ucs("GET", path, api.wot(other_box, "view"))
    assert_domain_error(mismatch, 403, "notAuthorized", set())
    assert mismatch.json()["description"] == "Not authorized"
    # a WOT is accepted for its full 30 s: iat 29 s ago still works
    now = int(time.time())
    old = api.mint({"work_type": "view", "box_id": pkg.fub_id, "iat": now - 29, "exp": now + 1})
    assert api.ucs("GET", path, old).status_code == 200
    # DCS: wrong work_type and expired download WOTs are 401 as well
    dcs_claims = {"work_type": "download", "file_id": str(uuid.uuid4()), "accession": "GHGAF1"}
    for token in (
        view,
        api.mint(dcs_claims, lifetime=-65),
        api.mint({**dcs_claims, "file_id": str(uuid.uuid1())}),
    ):
        response = api.dcs("/objects/GHGAF1", token)
        assert (response.status_code, response.json()) == (401, invalid)
    wrong_file = api.dcs("/objects/GHGAF2", api.mint(dcs_claims))
    assert_domain_error(wrong_file, 403, "wrongFileAuthorizationError", set())
    assert (
        wrong_file.json()["description"]
        == "Endpoint file ID did not match file ID announced in work order token."
    )
    unknown = api.dcs("/objects/GHGAF1", api.mint(dcs_claims))
    assert assert_domain_error(unknown, 404, "noSuchObject") == {"object_id": "GHGAF1"}
    assert unknown.json()["description"] == "The requested DrsObject wasn't found"
    envelope_unknown = api.dcs("/objects/GHGAF1/envelopes", api.mint(dcs_claims))
    assert_domain_error(envelope_unknown, 404, "noSuchObject")


def test_non_uuid4_path_ids_give_422(api: Api) -> None:
    pkg = api.new_package()
    token = api.mint({"work_type": "view", "box_id": pkg.fub_id})
    assert api.ucs("GET", f"/boxes/{uuid.uuid1()}/uploads", token).status_code == 422
    assert api.ucs("GET", "/boxes/not-a-uuid/uploads", token).status_code == 422


def test_listing_pages_and_sorts_by_alias(api: Api) -> None:
    pkg = api.new_package()
    ids = {}
    for alias in ("c.bam", "a.bam", "b.bam"):
        response = api.create(pkg, alias, 10)
        assert response.status_code == 201
        ids[alias] = response.json()["file_id"]
    page = api.listing(pkg, skip=0, limit=2)
    assert page.status_code == 200
    body = page.json()
    assert body["total_count"] == 3
    assert [i["alias"] for i in body["items"]] == ["a.bam", "b.bam"]
    rest = api.listing(pkg, skip=2, limit=100).json()
    assert [i["alias"] for i in rest["items"]] == ["c.bam"]
    item = rest["items"][0]
    assert item["id"] == ids["c.bam"] and UUID4.match(item["id"])
    assert item["state"] == "init"
    assert (item["decrypted_size"], item["encrypted_size"]) == (10, encrypted_size(10))
    assert item["encrypted_parts_md5"] is None
    expected = {
        "id", "box_id", "alias", "state", "state_updated", "storage_alias", "bucket_id", "object_id",
        "decrypted_size", "encrypted_size", "part_size", "secret_id", "decrypted_sha256",
        "encrypted_parts_md5", "encrypted_parts_sha256", "failure_reason", "s3_upload_id",
        "initiated", "completed",
    }  # fmt: skip
    assert set(item) == expected
    descending = api.listing(pkg, sort="-alias").json()
    assert [i["alias"] for i in descending["items"]] == ["c.bam", "b.bam", "a.bam"]
    # issue 15 (5): bad paging parameters are FastAPI's own 422, not paginationError
    for params in ({"limit": 1001}, {"limit": -1}, {"skip": -1}, {"skip": "x"},
                   {"sort": "nope"}, {"sort": "alias,"}, {"sort": "--alias"}):  # fmt: skip
        bad = api.listing(pkg, **params)
        assert bad.status_code == 422, params
        assert isinstance(bad.json()["detail"], list), params
    assert api.listing(pkg, sort="-state,alias").status_code == 200
    unknown_box = api.ucs(
        "GET",
        f"/boxes/{(box := str(uuid.uuid4()))}/uploads",
        api.mint({"work_type": "view", "box_id": box}),
    )
    assert assert_domain_error(unknown_box, 404, "boxNotFound") == {"box_id": box}


# --- 10: create ----------------------------------------------------------------------------


def test_create_validation_422(api: Api) -> None:
    pkg = api.new_package()
    assert api.create(pkg, "zero.bin", 0, 124).status_code == 422
    assert api.create(pkg, "small.bin", 10, 10).status_code == 422
    assert api.create(pkg, "part.bin", 10, part_size=5 * MiB - 1).status_code == 422
    assert api.create(pkg, "big.bin", 10, part_size=5 * 1024 * MiB + 1).status_code == 422


def test_create_checks_in_order(api: Api) -> None:
    # 1: unknown box
    box = str(uuid.uuid4())
    token = api.mint({"work_type": "create", "alias": "a", "box_id": box})
    body = {"alias": "a", "decrypted_size": 1, "encrypted_size": 153, "part_size": 5 * MiB}
    assert assert_domain_error(
        api.ucs("POST", f"/boxes/{box}/uploads", token, body), 404, "boxNotFound"
    ) == {"box_id": box}
    # claims/body mismatch
    pkg = api.new_package(max_size=100)
    token = api.wot(pkg, "create", alias="other")
    assert_domain_error(
        api.ucs("POST", f"/boxes/{pkg.fub_id}/uploads", token, body), 403, "notAuthorized"
    )
    # 6 before 7: box too small even though the part size would also be invalid
    data = assert_domain_error(api.create(pkg, "huge", 101, 10**12), 507, "boxMaxSizeExceeded")
    assert data == {"box_id": pkg.fub_id, "max_size": 100, "current_size": 0, "file_alias": "huge"}
    # 5 before 6: five open uploads, then 429 without Retry-After even for an oversize file
    for i in range(5):
        assert api.create(pkg, f"f{i}", 10).status_code == 201
    too_many = api.create(pkg, "f5", 1000)
    assert assert_domain_error(too_many, 429, "tooManyOpenUploads") == {
        "box_id": pkg.fub_id,
        "max_concurrent": 5,
    }
    assert "Retry-After" not in too_many.headers
    # 6 counts init uploads: 5 × 10 bytes open, max 100
    assert assert_domain_error(api.create(pkg, "g", 51), 429, "tooManyOpenUploads")
    # 2 before everything else
    assert api.sb.admin("POST", f"/boxes/{pkg.fub_id}/lock", {"force": True}).status_code == 200
    data = assert_domain_error(api.create(pkg, "h", 10**6), 409, "boxStateError")
    assert data == {"box_id": pkg.fub_id, "box_state": "locked"}


def test_create_invalid_part_size_and_duplicates(api: Api) -> None:
    pkg = api.new_package()
    data = assert_domain_error(
        api.create(pkg, "many", 10**11, 10**11 + 10**8, 5 * MiB), 400, "invalidPartSize"
    )
    assert data == {"file_alias": "many", "part_size": 5 * MiB}
    first = api.create(pkg, "dup.bam", 10)
    assert first.status_code == 201
    assert first.json() == {
        "file_id": first.json()["file_id"],
        "alias": "dup.bam",
        "storage_alias": "HD01",
    }
    assert UUID4.match(first.json()["file_id"])
    assert assert_domain_error(api.create(pkg, "dup.bam", 10), 409, "fileUploadAlreadyExists") == {
        "alias": "dup.bam"
    }
    # a cancelled predecessor is replaced under a new file id
    assert api.delete(pkg, first.json()["file_id"]).status_code == 204
    second = api.create(pkg, "dup.bam", 10)
    assert second.status_code == 201
    assert second.json()["file_id"] != first.json()["file_id"]
    items = api.listing(pkg).json()["items"]
    assert [(i["id"], i["state"]) for i in items] == [(second.json()["file_id"], "init")]
    # overwrite cancels the init upload and creates a new one
    third = api.create(pkg, "dup.bam", 10, overwrite=True)
    assert third.status_code == 201
    states = {i["id"]: i["state"] for i in api.listing(pkg).json()["items"]}
    assert states == {third.json()["file_id"]: "init"}


# --- 11-15: parts, complete, delete --------------------------------------------------------


def test_part_urls(api: Api) -> None:
    pkg = api.new_package()
    file_id = api.create(pkg, "p.bin", 100).json()["file_id"]
    url = api.part_url(pkg, file_id, 1)
    assert url.status_code == 200
    assert isinstance(url.json(), str) and url.json().startswith(api.sb.s3_url)
    assert (
        api.http.put(
            url.json(), content=b"x" * 100, headers={"Content-Type": "application/octet-stream"}
        ).status_code
        == 200
    )
    close = api.wot(pkg, "close", file_id=file_id)
    response = api.ucs("GET", f"/boxes/{pkg.fub_id}/uploads/{file_id}/parts/1", close)
    assert (response.status_code, response.json()) == (
        401,
        {"detail": "Invalid authentication credentials"},
    )
    other = str(uuid.uuid4())
    mismatch = api.ucs(
        "GET",
        f"/boxes/{pkg.fub_id}/uploads/{other}/parts/1",
        api.wot(pkg, "upload", file_id=file_id),
    )
    assert_domain_error(mismatch, 403, "notAuthorized")
    missing = api.part_url(pkg, other, 1)
    assert assert_domain_error(missing, 404, "fileUploadNotFound") == {"file_id": other}
    assert_domain_error(api.part_url(pkg, file_id, 0), 500, "internalError")
    assert_domain_error(api.part_url(pkg, file_id, 10001), 500, "internalError")
    assert api.delete(pkg, file_id).status_code == 204
    assert_domain_error(api.part_url(pkg, file_id, 1), 404, "s3UploadNotFound", set())


@pytest.mark.parametrize("size", [1, 5 * MiB + 1, 12 * MiB])
def test_complete_checks_the_multipart_etag(api: Api, size: int) -> None:
    pkg = api.new_package()
    data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    file_id = api.upload(pkg, f"f{size}.bin", data)
    assert api.state_of(pkg, file_id) == "inbox"
    items = api.listing(pkg, with_checksums=True).json()["items"]
    assert items[0]["encrypted_parts_md5"] is not None
    # repeat is idempotent
    encrypted_parts = [b""]  # content irrelevant for the repeat
    assert api.complete(pkg, file_id, encrypted_parts, "0" * 64, "x-1").status_code == 204


def test_complete_checksum_mismatch_then_state_error(api: Api) -> None:
    pkg = api.new_package()
    encrypted = c4gh_encrypt(b"hello", api.user_sk, api.hub_pk)
    file_id = api.create(pkg, "m.bin", 5, len(encrypted)).json()["file_id"]
    api.put_parts(pkg, file_id, [encrypted])
    wrong = api.complete(
        pkg, file_id, [encrypted], "0" * 64, encrypted_md5=hashlib.md5(encrypted).hexdigest()
    )  # no -1
    assert assert_domain_error(wrong, 400, "checksumMismatch") == {"file_id": file_id}
    assert api.state_of(pkg, file_id) == "failed"
    again = api.complete(pkg, file_id, [encrypted], "0" * 64)
    assert assert_domain_error(again, 409, "fileUploadStateError") == {"file_id": file_id}
    # the failed alias can be uploaded again under a new file id
    new_id = api.upload(pkg, "m.bin", b"hello")
    assert new_id != file_id


def test_complete_size_mismatch(api: Api) -> None:
    pkg = api.new_package()
    encrypted = c4gh_encrypt(b"hello", api.user_sk, api.hub_pk)
    file_id = api.create(pkg, "s.bin", 5, len(encrypted) + 1).json()["file_id"]
    api.put_parts(pkg, file_id, [encrypted])
    response = api.complete(pkg, file_id, [encrypted], "0" * 64)
    assert assert_domain_error(response, 400, "uploadSizeMismatch") == {"file_id": file_id}
    assert api.state_of(pkg, file_id) == "failed"


@pytest.mark.parametrize(
    "parts",
    [
        [b"a" * (6 * MiB), b"b" * (5 * MiB), b"c"],  # non-final parts unequal
        [b"a" * MiB, b"b" * 10],  # non-final part under 5 MiB (S3 rejects)
    ],
    ids=["unequal", "undersized"],
)
def test_complete_rejects_bad_part_layouts(api: Api, parts: list[bytes]) -> None:
    pkg = api.new_package()
    total = sum(map(len, parts))
    file_id = api.create(pkg, "bad.bin", total - 200, total).json()["file_id"]
    api.put_parts(pkg, file_id, parts)
    response = api.complete(pkg, file_id, parts, "0" * 64)
    assert assert_domain_error(response, 500, "uploadCompletionError") == {
        "box_id": pkg.fub_id,
        "file_id": file_id,
    }


def test_complete_with_no_parts_is_a_completion_error(api: Api) -> None:
    pkg = api.new_package()
    file_id = api.create(pkg, "empty.bin", 10).json()["file_id"]
    assert_domain_error(api.complete(pkg, file_id, [b"x"], "0" * 64), 500, "uploadCompletionError")


def test_delete_from_any_state_and_locked_box(api: Api) -> None:
    pkg = api.new_package()
    init_id = api.create(pkg, "i.bin", 10).json()["file_id"]
    inbox_id = api.upload(pkg, "j.bin", b"data")
    for file_id in (init_id, inbox_id):
        assert api.delete(pkg, file_id).status_code == 204
        assert api.delete(pkg, file_id).status_code == 204
        assert api.state_of(pkg, file_id) == "cancelled"
    missing = str(uuid.uuid4())
    assert assert_domain_error(api.delete(pkg, missing), 404, "fileUploadNotFound") == {
        "file_id": missing
    }
    kept = api.upload(pkg, "k.bin", b"more")
    pending = api.create(pkg, "l.bin", 10).json()["file_id"]
    assert api.sb.admin("POST", f"/boxes/{pkg.fub_id}/lock", {"force": False}).status_code == 409
    assert api.sb.admin("POST", f"/boxes/{pkg.fub_id}/lock", {"force": True}).status_code == 200
    assert api.state_of(pkg, pending) == "cancelled"
    locked = {"box_id": pkg.fub_id, "box_state": "locked"}
    assert assert_domain_error(api.delete(pkg, kept), 409, "boxStateError") == locked
    assert (
        assert_domain_error(api.complete(pkg, kept, [b""], "0" * 64), 409, "boxStateError")
        == locked
    )
    assert assert_domain_error(api.create(pkg, "m.bin", 10), 409, "boxStateError") == locked


# --- 16-19: DCS, envelopes, presigned GETs, round trip -------------------------------------


def test_round_trip_with_raw_http(api: Api) -> None:
    pkg = api.new_package()
    original = b"GHGA sandbox round trip\n" * 5000 + b"end"
    plaintext_sha256 = hashlib.sha256(original).hexdigest()
    file_id = api.upload(pkg, "round.trip.vcf.gz", original)
    outcomes = api.archive_box(pkg)
    assert [(o["file_id"], o["state"]) for o in outcomes] == [(file_id, "archived")]
    accession = outcomes[0]["accession"]
    assert re.fullmatch(r"GHGAF\d{14}", accession)
    assert api.state_of(pkg, file_id) == "archived"

    download = api.download_package([accession])
    details = api.wps("GET", f"/work-packages/{download.id}", download.wpat).json()
    assert details["type"] == "download"
    assert details["files"] == {accession: ".vcf.gz"}
    assert details["research_data_upload_box_id"] is None and details["file_upload_box_id"] is None
    wot = api.download_wot(download, accession)
    _, claims, _ = jws_parts(wot)
    assert claims["work_type"] == "download" and claims["accession"] == accession
    assert claims["file_id"] == file_id and claims["exp"] == claims["iat"] + 30

    first = api.dcs(f"/objects/{accession}", wot)
    assert first.status_code == 202
    assert first.content == b"null"
    assert first.headers["Cache-Control"] == "no-store"
    assert int(first.headers["Retry-After"]) >= 1
    deadline = time.monotonic() + 20
    while (
        staged := api.dcs(f"/objects/{accession}", api.download_wot(download, accession))
    ).status_code == 202:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert staged.status_code == 200, staged.text
    assert staged.headers["Cache-Control"] == "max-age=30, private"
    drs = staged.json()
    body_size = len(original) + 28 * -(-len(original) // SEGMENT)
    assert drs["id"] == accession and drs["size"] == body_size
    assert drs["checksums"] == [{"checksum": plaintext_sha256, "type": "sha-256"}]
    assert drs["self_uri"].startswith("drs://") and drs["self_uri"].endswith(f"/{accession}")
    assert drs["access_methods"][0]["type"] == "s3"
    assert "created_time" in drs
    for _ in range(3):  # never 202 again
        again = api.dcs(f"/objects/{accession}", api.download_wot(download, accession))
        assert again.status_code == 200
    url = again.json()["access_methods"][0]["access_url"]["url"]

    envelope_response = api.dcs(
        f"/objects/{accession}/envelopes", api.download_wot(download, accession)
    )
    assert envelope_response.status_code == 200
    assert envelope_response.headers["Cache-Control"] == "no-store"
    assert envelope_response.text.startswith('"')
    envelope = base64.b64decode(envelope_response.json())
    assert len(envelope) == 124

    headers = {"Cache-Control": "no-store", "X-Request-Id": str(uuid.uuid4())}
    ranged = api.http.get(url, headers={**headers, "Range": "bytes=10-99"})
    assert ranged.status_code == 206
    body = api.http.get(url, headers=headers).content
    assert len(body) == drs["size"]
    assert ranged.content == body[10:100]
    decrypted = io.BytesIO()
    crypt4gh.lib.decrypt([(0, api.user_sk, None)], io.BytesIO(envelope + body), decrypted)
    assert decrypted.getvalue() == original
    assert hashlib.sha256(decrypted.getvalue()).hexdigest() == plaintext_sha256


def test_download_wot_errors_and_expired_urls(api: Api) -> None:
    pkg = api.new_package()
    api.upload(pkg, "x.bam", b"x" * 1000)
    accession = api.archive_box(pkg)[0]["accession"]
    unmapped = api.download_package([accession, "GHGAF99999999999999"])
    not_in = api.wps(
        "POST",
        f"/work-packages/{unmapped.id}/files/GHGAF88888888888888/work-order-tokens",
        unmapped.wpat,
    )
    assert (not_in.status_code, not_in.json()) == (
        403,
        {"detail": "File is not contained in work package"},
    )
    not_avail = api.wps(
        "POST",
        f"/work-packages/{unmapped.id}/files/GHGAF99999999999999/work-order-tokens",
        unmapped.wpat,
    )
    assert (not_avail.status_code, not_avail.json()) == (
        403,
        {"detail": "File not available for download"},
    )
    assert api.sb.admin("POST", f"/work-packages/{unmapped.id}/revoke").status_code == 200
    revoked = api.wps("GET", f"/work-packages/{unmapped.id}", unmapped.wpat)
    assert (revoked.status_code, revoked.json()) == (
        403,
        {"detail": "Download access has been revoked"},
    )

    download = api.download_package([accession])
    assert api.sb.admin("POST", f"/objects/{accession}/stage").status_code == 200
    normal = api.dcs(f"/objects/{accession}", api.download_wot(download, accession)).json()
    url = normal["access_methods"][0]["access_url"]["url"]
    assert api.http.get(url, headers={"Range": "bytes=0-9"}).status_code == 206
    # A URL presigned for 1 s (X-Amz-Date has whole seconds, so it may expire sooner):
    # once 2.1 s have passed it is refused whatever the clock's phase.
    api.sb.admin("POST", "/faults", {"url_expiry": {"seconds": 1, "count": 1, "kind": "download"}})
    short = api.dcs(f"/objects/{accession}", api.download_wot(download, accession)).json()
    url = short["access_methods"][0]["access_url"]["url"]
    time.sleep(2.1)
    expired = api.http.get(url, headers={"Range": "bytes=0-9"})
    assert expired.status_code == 403
    assert b"AccessDenied" in expired.content
    fresh = api.dcs(f"/objects/{accession}", api.download_wot(download, accession)).json()
    assert api.http.get(fresh["access_methods"][0]["access_url"]["url"]).status_code == 200


# --- Data Hub step, archive CLI, faults ----------------------------------------------------------


def test_data_hub_rejects_a_wrong_plaintext_checksum(api: Api) -> None:
    pkg = api.new_package()
    file_id = api.upload(pkg, "liar.bin", b"content", sha256="0" * 64)
    result = api.sb.admin("POST", f"/boxes/{pkg.fub_id}/interrogate").json()
    assert result == [
        {
            "file_id": file_id,
            "alias": "liar.bin",
            "state": "failed",
            "failure_reason": "Decrypted content checksum mismatch (SHA-256)",
        }
    ]
    assert api.state_of(pkg, file_id) == "failed"


def test_faults_are_explicit_and_counted(api: Api) -> None:
    pkg = api.new_package()
    armed = api.sb.admin(
        "POST",
        "/faults",
        {
            "status_rules": [
                {"service": "ucs", "status": 429, "count": 2, "retry_after": 3, "method": "POST"}
            ],
            "etag_mismatch": 1,
        },
    )
    assert armed.status_code == 200
    for _ in range(2):
        response = api.create(pkg, "f.bin", 10)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "3"
    assert api.ucs("GET", "/health", None).status_code == 200  # health is never affected
    encrypted = c4gh_encrypt(b"abc", api.user_sk, api.hub_pk)
    file_id = api.create(pkg, "f.bin", 3, len(encrypted)).json()["file_id"]
    api.put_parts(pkg, file_id, [encrypted])
    assert_domain_error(api.complete(pkg, file_id, [encrypted], "0" * 64), 400, "checksumMismatch")
    api.sb.admin("POST", "/faults", {"status_rules": [{"service": "wps", "status": 503}]})
    assert api.wps("GET", f"/work-packages/{pkg.id}", pkg.wpat).status_code == 503
    assert api.wps("GET", f"/work-packages/{pkg.id}", pkg.wpat).status_code == 200
    injected = api.sb.admin("GET", "/faults").json()["injected"]
    assert (
        injected["status:ucs:429"] >= 2
        and injected["etag_mismatch"] >= 1
        and injected["status:wps:503"] >= 1
    )


def test_forced_202_and_s3_fault(api: Api) -> None:
    pkg = api.new_package()
    api.upload(pkg, "y.bam", b"y" * 100)
    accession = api.archive_box(pkg)[0]["accession"]
    download = api.download_package([accession])
    api.sb.admin("POST", f"/objects/{accession}/stage")
    api.sb.admin(
        "POST", "/faults", {"dcs_force_202": 2, "status_rules": [{"service": "s3", "status": 500}]}
    )
    for _ in range(2):
        response = api.dcs(f"/objects/{accession}", api.download_wot(download, accession))
        assert response.status_code == 202
    ok = api.dcs(f"/objects/{accession}", api.download_wot(download, accession))
    assert ok.status_code == 200
    url = ok.json()["access_methods"][0]["access_url"]["url"]
    assert api.http.get(url).status_code == 500
    assert api.http.get(url).status_code == 200


def test_archive_cli_and_status(sandbox: Any, tmp_path: Any) -> None:
    api = Api(sandbox)
    pkg_id, sealed = sandbox.upload_wpat_file.read_text().strip().split(":")
    details = api.wps("GET", f"/work-packages/{pkg_id}", api.open_sealed(sealed).decode()).json()
    pkg = Package(
        pkg_id,
        api.open_sealed(sealed).decode(),
        details["research_data_upload_box_id"],
        details["file_upload_box_id"],
        "",
    )
    api.upload(pkg, "good.bam", b"good" * 100)
    api.upload(pkg, "bad.bam", b"bad" * 100, sha256="1" * 64)
    result = sandbox.archive()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "GHGAF00000000000001" in result.stdout
    assert "failed" in result.stdout
    assert sandbox.download_wpat_file.exists()
    assert oct(sandbox.download_wpat_file.stat().st_mode & 0o777) == "0o600"
    token = sandbox.download_wpat_file.read_text().strip()
    wp_id, sealed = token.split(":")
    details = api.wps("GET", f"/work-packages/{wp_id}", api.open_sealed(sealed).decode()).json()
    assert details["files"] == {"GHGAF00000000000001": ".bam"}
    import subprocess
    import sys

    status = subprocess.run(
        [sys.executable, "-m", "ghga_sandbox", "status", "--state-dir", str(sandbox.state_dir), "--json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    document = json.loads(status.stdout)
    assert {u["alias"]: u["state"] for u in document["uploads"]} == {
        "good.bam": "archived",
        "bad.bam": "failed",
    }
    assert [o["accession"] for o in document["drs_objects"]] == ["GHGAF00000000000001"]
    assert document["boxes"][0]["state"] == "archived"
    assert oct(sandbox.user_sec.stat().st_mode & 0o777) == "0o600"
    assert oct(sandbox.upload_wpat_file.stat().st_mode & 0o777) == "0o600"
    # only what ghga-connector 4.0.1 accepts; the keys have the default names key.pub/key.sec
    assert (sandbox.state_dir / ".ghga_connector.yaml").read_text() == (
        f"wkvs_api_url: {sandbox.wkvs_api_url}\n"
    )
    assert sandbox.user_pub.name == "key.pub" and sandbox.user_sec.name == "key.sec"


def test_dropped_connections_mid_body(api: Api) -> None:
    original = hashlib.sha256(b"z").digest() * 10_000  # 320 kB, several segments
    pkg = api.new_package()
    api.upload(pkg, "z.bam", original)
    accession = api.archive_box(pkg)[0]["accession"]
    download = api.download_package([accession])
    api.sb.admin("POST", f"/objects/{accession}/stage")
    drs = api.dcs(f"/objects/{accession}", api.download_wot(download, accession)).json()
    url = drs["access_methods"][0]["access_url"]["url"]

    # GET: full Content-Length announced, the connection closes after 1000 body bytes
    armed = api.sb.admin("POST", "/faults", {"drop_connections": {"after_bytes": 1000}})
    assert armed.json()["armed"]["drop_connections"] == [
        {"count": 1, "after_bytes": 1000, "method": None}
    ]
    received = b""
    with httpx.Client(timeout=30) as client, client.stream("GET", url) as response:
        assert response.status_code == 200
        assert int(response.headers["Content-Length"]) == drs["size"]
        with pytest.raises(httpx.RemoteProtocolError):
            for chunk in response.iter_raw():
                received += chunk
    assert len(received) == 1000
    assert len(api.http.get(url).content) == drs["size"]  # the next GET is whole

    # PUT: the part is cut after 100 bytes without an answer; a retry succeeds
    second = api.new_package()
    encrypted = c4gh_encrypt(b"part" * 5000, api.user_sk, api.hub_pk)
    file_id = api.create(second, "cut.bin", 20000, len(encrypted)).json()["file_id"]
    part_url = api.part_url(second, file_id, 1).json()
    api.sb.admin("POST", "/faults", {"drop_connections": {"after_bytes": 100, "method": "PUT"}})
    with pytest.raises(httpx.TransportError), httpx.Client(timeout=30) as client:
        client.put(part_url, content=encrypted)
    assert api.http.put(part_url, content=encrypted).status_code == 200
    done = api.complete(second, file_id, [encrypted], hashlib.sha256(b"part" * 5000).hexdigest())
    assert done.status_code == 204, done.text

    faults = api.sb.admin("GET", "/faults").json()
    assert faults["injected"]["drop:s3:GET"] >= 1
    assert faults["injected"]["drop:s3:PUT"] >= 1
    assert faults["armed"]["drop_connections"] == []


# --- issue 15: the last differences from the real services -------------------------------


def test_ucs_domain_errors_have_empty_descriptions(api: Api) -> None:
    """Issue 15 (3): UCS 15.0.0 sends ``description: ""`` except for notAuthorized and
    internalError; DCS keeps its prose."""
    pkg = api.new_package()
    assert api.create(pkg, "same.bam", 10).status_code == 201
    duplicate = api.create(pkg, "same.bam", 10)
    assert_domain_error(duplicate, 409, "fileUploadAlreadyExists")
    assert duplicate.json()["description"] == ""
    missing = api.ucs(
        "GET",
        f"/boxes/{pkg.fub_id}/uploads/{uuid.uuid4()}/parts/1",
        api.mint({"work_type": "upload", "box_id": pkg.fub_id, "file_id": str(uuid.uuid4())}),
    )
    assert missing.status_code in (403, 404)
    if missing.json()["exception_id"] == "notAuthorized":
        assert missing.json()["description"] == "Not authorized"
    else:
        assert missing.json()["description"] == ""
    unknown_file = api.ucs(
        "DELETE",
        f"/boxes/{pkg.fub_id}/uploads/{uuid.uuid4()}",
        api.mint({"work_type": "delete", "box_id": pkg.fub_id, "file_id": str(uuid.uuid4())}),
    )
    assert unknown_file.json()["exception_id"] == "notAuthorized"  # claims differ from path
    assert unknown_file.json()["description"] == "Not authorized"
    api.sb.admin("POST", "/faults", {"status_rules": [{"service": "ucs", "status": 500}]})
    failed = api.listing(pkg)
    assert_domain_error(failed, 500, "internalError")
    assert failed.json()["description"] == "An internal server error has occurred."


def test_expired_work_order_tokens_have_a_60_second_leeway(api: Api, tmp_path: Any) -> None:
    """Issue 15 (4): jwcrypto's default leeway of 60 s, as in the real services; the
    ``--wot-leeway 0`` switch keeps the client's refresh path testable."""
    pkg = api.new_package()
    path = f"/boxes/{pkg.fub_id}/uploads"
    claims = {"work_type": "view", "box_id": pkg.fub_id}
    assert api.ucs("GET", path, api.mint(claims, lifetime=-30)).status_code == 200
    assert api.ucs("GET", path, api.mint(claims, lifetime=-90)).status_code == 401

    strict = start_sandbox(tmp_path / "strict", "--wot-leeway", "0")
    try:
        strict_api = Api(strict)
        strict_pkg = strict_api.new_package()
        strict_path = f"/boxes/{strict_pkg.fub_id}/uploads"
        token = strict_api.mint({"work_type": "view", "box_id": strict_pkg.fub_id}, lifetime=-2)
        assert strict_api.ucs("GET", strict_path, token).status_code == 401
        strict_api.http.close()
    finally:
        strict.stop()


def test_wps_refuses_an_empty_alias(api: Api) -> None:
    """Issue 15 (6): ``""`` is refused like a missing alias (422), for every work type."""
    pkg = api.new_package()
    base = f"/work-packages/{pkg.id}/boxes/{pkg.rdub_id}/work-order-tokens"
    for body in (
        {"work_type": "create", "alias": ""},
        {"work_type": "view", "alias": ""},
        {"work_type": "upload", "alias": "", "file_id": str(uuid.uuid4())},
    ):
        response = api.wps("POST", base, pkg.wpat, body)
        assert response.status_code == 422, body
    assert api.wps("POST", base, pkg.wpat, {"work_type": "create", "alias": "a"}).status_code == 201


def test_wkvs_and_dcs_answer_as_the_real_services_do(api: Api) -> None:
    """Issue 15 (7, 8): storage URLs end with "/", ``created_time`` uses "+00:00", the DRS
    object answer has no Content-Type, the 202 body is ``null``, and a missing file secret
    is a 500 "Internal Server Error."."""
    values = httpx.get(f"{api.sb.wkvs_api_url}/values").json()
    assert values["storage_aliases"] == {"HD01": api.sb.s3_url.rstrip("/") + "/"}

    pkg = api.new_package()
    api.upload(pkg, "real.bin", b"real services\n" * 1000)
    (outcome,) = api.archive_box(pkg)
    accession = outcome["accession"]
    download = api.download_package([accession])
    api.sb.admin("POST", "/faults", {"dcs_force_202": 1})
    pending = api.dcs(f"/objects/{accession}", api.download_wot(download, accession))
    assert (pending.status_code, pending.content) == (202, b"null")  # not in the OpenAPI document
    # The staging copy to the outbox runs in the background: ask again while it is on its
    # way (bounded; the assertion is on the answer, not on the time it took).
    for _ in range(600):
        staged = api.dcs(f"/objects/{accession}", api.download_wot(download, accession))
        if staged.status_code != 202:
            break
        time.sleep(0.05)
    assert staged.status_code == 200, staged.text
    assert "content-type" not in staged.headers
    created = json.loads(staged.content)["created_time"]
    assert created.endswith("+00:00") and not created.endswith("Z")

    api.sb.admin("POST", "/faults", {"dcs_missing_secret": 1})
    broken = api.dcs(f"/objects/{accession}/envelopes", api.download_wot(download, accession))
    assert assert_domain_error(broken, 500, "internalServerError") == {}
    assert broken.json()["description"] == "Internal Server Error."
    assert UUID4.match(broken.headers["X-Request-Id"])
    fine = api.dcs(f"/objects/{accession}/envelopes", api.download_wot(download, accession))
    assert fine.status_code == 200

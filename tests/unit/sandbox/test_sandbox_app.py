"""In-process tests of the ASGI app (no S3 calls): WKVS, WPS, middleware and faults."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from nacl.public import PrivateKey, SealedBox

from ghga_sandbox.app import create_app
from ghga_sandbox.config import SandboxSettings
from ghga_sandbox.faults import FaultSettings, StatusRule
from ghga_sandbox.state import SandboxState
from ghga_sandbox.storage import S3Storage
from ghga_sandbox.workpackages import WorkPackageService


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    settings = SandboxSettings(
        state_dir=tmp_path, public_url="http://127.0.0.1:9999", api_latency_ms=50
    )
    state = SandboxState.open(tmp_path / "state.sqlite3")
    storage = S3Storage("http://127.0.0.1:1", access_key="x", secret_key="y")  # never contacted
    yield create_app(settings, state, storage)
    state.close()


async def test_wkvs_latency_request_id_and_faults(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        start = time.monotonic()
        sent = str(uuid.uuid4())
        response = await client.get("/.well-known/values", headers={"X-Request-Id": sent})
        assert time.monotonic() - start >= 0.05
        assert response.status_code == 200
        assert response.headers["x-request-id"] == sent
        # an invalid id is replaced by a new UUID, and a missing one is created
        replaced = await client.get("/.well-known/values", headers={"X-Request-Id": "abc"})
        assert uuid.UUID(replaced.headers["x-request-id"]).version == 4
        created = await client.get("/.well-known/health")
        assert uuid.UUID(created.headers["x-request-id"]).version == 4
        assert response.json()["storage_aliases"] == {"HD01": "http://127.0.0.1:1/"}
        app.state.runtime.faults.arm(
            FaultSettings(status_rules=[StatusRule(service="wkvs", status=503, retry_after=2)])
        )
        assert (await client.get("/.well-known/health")).status_code == 200
        failed = await client.get("/.well-known/values")
        assert (failed.status_code, failed.headers["retry-after"], failed.json()) == (
            503,
            "2",
            {"detail": "Fault injected by ghga-sandbox."},
        )
        assert (await client.get("/.well-known/values")).status_code == 200


def _admin_headers(app: FastAPI) -> dict[str, str]:
    return {"Authorization": f"Bearer {app.state.runtime.settings.admin_token}"}


async def test_admin_api_needs_its_host_and_token(app: FastAPI) -> None:
    """DNS rebinding (a foreign Host) and requests without the token are refused."""
    transport = httpx.ASGITransport(app=app)
    listening = app.state.runtime.settings.public_url  # http://127.0.0.1:9999
    async with httpx.AsyncClient(transport=transport, base_url=listening) as client:
        assert (await client.get("/admin/status", headers=_admin_headers(app))).status_code == 200
        assert (await client.get("/admin/status")).status_code == 401
        wrong = {"Authorization": "Bearer " + "x" * 43}
        assert (await client.get("/admin/status", headers=wrong)).status_code == 401
        rebound = {**_admin_headers(app), "Host": "evil.example.com:9999"}
        refused = await client.post("/admin/faults", json={"etag_mismatch": 1}, headers=rebound)
        assert refused.status_code == 403
        assert "Host" in refused.json()["detail"]
        other_port = {**_admin_headers(app), "Host": "127.0.0.1:8080"}
        assert (await client.get("/admin/status", headers=other_port)).status_code == 403
        assert app.state.runtime.faults.snapshot()["armed"].get("etag_mismatch") is None
        # the services themselves are not behind the admin guard
        assert (await client.get("/.well-known/values")).status_code == 200


async def test_api_latency_switched_at_run_time(app: FastAPI) -> None:
    """``api_latency_ms`` armed through the admin API replaces ``--api-latency-ms`` (50)."""
    transport = httpx.ASGITransport(app=app)
    listening = app.state.runtime.settings.public_url
    async with httpx.AsyncClient(transport=transport, base_url=listening) as client:

        async def timed_call() -> float:
            start = time.monotonic()
            assert (await client.get("/.well-known/values")).status_code == 200
            return time.monotonic() - start

        admin = _admin_headers(app)
        armed = await client.post("/admin/faults", json={"api_latency_ms": 300}, headers=admin)
        assert armed.json()["armed"]["api_latency_ms"] == 300
        assert await timed_call() >= 0.3
        await client.post("/admin/faults", json={"api_latency_ms": 0}, headers=admin)
        assert await timed_call() < 0.3
        cleared = await client.delete("/admin/faults", headers=admin)
        assert "api_latency_ms" not in cleared.json()["armed"]
        assert 0.05 <= await timed_call() < 0.3  # back to serve's --api-latency-ms
        bad = await client.post("/admin/faults", json={"api_latency_ms": -1}, headers=admin)
        assert bad.status_code == 422


async def test_wps_in_process(app: FastAPI) -> None:
    runtime = app.state.runtime
    user = PrivateKey.generate()
    key_b64 = base64.b64encode(bytes(user.public_key)).decode()
    box = runtime.state.create_box("HD01", 100)
    issued = WorkPackageService(runtime).create(
        type_="upload", user_public_key=key_b64, rdub_id=box.rdub_id, fub_id=box.id
    )
    wpat = SealedBox(user).decrypt(base64.b64decode(issued.sealed_token)).decode()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox/wps") as client:
        ok = await client.get(
            f"/work-packages/{issued.package.id}", headers={"Authorization": f"Bearer {wpat}"}
        )
        assert ok.status_code == 200 and ok.json()["file_upload_box_id"] == box.id
        # a missing header is 401 even for a malformed id (the dependency runs first)
        missing = await client.get("/work-packages/not-a-uuid")
        assert missing.status_code == 401
        wot = await client.post(
            f"/work-packages/{issued.package.id}/boxes/{box.rdub_id}/work-order-tokens",
            headers={"Authorization": f"Bearer {wpat}"},
            json={"work_type": "upload", "alias": None, "file_id": str(uuid.uuid4())},
        )
        assert wot.status_code == 201
        assert wot.headers["cache-control"] == "max-age=30, private"


@pytest.mark.posix_only  # POSIX permissions
def test_the_state_database_and_its_wal_files_are_private(tmp_path: Path) -> None:
    """Keys and file secrets also sit in SQLite's -wal and -shm files: 0600 like the file."""
    path = tmp_path / "state.sqlite3"
    state = SandboxState.open(path)
    state.discard_data()  # a write: the -wal file holds it
    try:
        for name in ("state.sqlite3", "state.sqlite3-wal", "state.sqlite3-shm"):
            assert (tmp_path / name).exists(), name
            assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
    finally:
        state.close()

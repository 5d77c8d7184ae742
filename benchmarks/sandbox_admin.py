"""Thin client of the sandbox admin API (``/admin``): boxes, work packages, archive, staging,
the API latency switch, status. Every call goes through :meth:`AdminClient._call`."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.servers import http_json

__all__ = ["AdminClient", "ArchivedFile", "raw_public_key"]


def raw_public_key(path: Path) -> str:
    """Standard base64 of the 32 raw bytes of a Crypt4GH public key file (PEM or bare)."""
    lines = [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("-----")
    ]
    raw = base64.b64decode("".join(lines))
    if len(raw) != 32:
        raise ValueError(f"{path}: not a 32-byte Crypt4GH public key")
    return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class ArchivedFile:
    """One upload after the sandbox's Data Hub step."""

    box_id: str
    alias: str
    state: str
    accession: str | None
    failure_reason: str | None


class AdminError(RuntimeError):
    """The admin API answered with an unexpected status."""


@dataclass
class AdminClient:
    """Calls ``{sandbox_url}/admin/...`` for one user key."""

    base_url: str
    user_public_key: str
    token: str | None = None
    """Sent as ``Authorization: Bearer`` if the sandbox's admin API wants one."""

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 60.0) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        status, data = http_json(method, f"{self.base_url}/admin{path}", body, timeout, headers)
        if status >= 300:
            raise AdminError(f"{method} /admin{path} -> {status}: {str(data)[:300]}")
        return data

    def new_upload_box(self) -> tuple[str, str]:
        """A fresh upload box with an upload work package: ``(box_id, access_token)``."""
        data = self._call("POST", "/upload-boxes", {"user_public_key": self.user_public_key})
        return str(data["file_upload_box_id"]), str(data["work_package"]["access_token"])

    def archive_box(self, box_id: str, timeout: float = 1800.0) -> list[ArchivedFile]:
        """The Data Hub step for one box: lock, interrogate (decrypt, check SHA-256,
        re-encrypt) every ``inbox`` upload, archive. Returns every upload's outcome."""
        self._call("POST", f"/boxes/{box_id}/lock", {"force": True})
        checked = self._call("POST", f"/boxes/{box_id}/interrogate", timeout=timeout)
        archived = self._call("POST", f"/boxes/{box_id}/archive", timeout=timeout)
        outcomes = [
            ArchivedFile(
                box_id=box_id,
                alias=str(f["alias"]),
                state=str(f["state"]),
                accession=f.get("accession"),
                failure_reason=f.get("failure_reason"),
            )
            for f in archived
        ]
        done = {f.alias for f in outcomes}
        outcomes += [
            ArchivedFile(box_id, str(f["alias"]), str(f["state"]), None, f.get("failure_reason"))
            for f in checked
            if f["alias"] not in done
        ]
        return outcomes

    def uploads(self, box_id: str) -> list[dict[str, Any]]:
        """The uploads of one box as the status document lists them."""
        return [u for u in self.status().get("uploads", []) if u.get("box_id") == box_id]

    def download_package(self, accessions: list[str]) -> str:
        """A download work package over ``accessions``; returns its access token."""
        data = self._call(
            "POST",
            "/work-packages",
            {"type": "download", "user_public_key": self.user_public_key, "accessions": accessions},
        )
        return str(data["access_token"])

    def stage(self, accession: str, timeout: float = 900.0) -> None:
        """Copy an archived object to the outbox now, so no client waits for staging."""
        self._call("POST", f"/objects/{accession}/stage", timeout=timeout)

    def set_api_latency(self, latency_ms: int) -> None:
        """Delay every later service call by ``latency_ms`` (replaces ``--api-latency-ms``)."""
        armed = self._call("POST", "/faults", {"api_latency_ms": latency_ms})["armed"]
        if armed.get("api_latency_ms") != latency_ms:
            raise AdminError(f"the sandbox did not switch its API latency: {armed}")

    def storage_aliases(self) -> list[str]:
        """The sandbox's storage aliases (e.g. ``HD01``), from its Data Hub keys."""
        return list(self._call("GET", "/keys")["datahub_public_keys"])

    def archived_sha256(self, accessions: list[str]) -> dict[str, str]:
        """``{accession: SHA-256 of the decrypted content}`` of archived files (from status)."""
        wanted = set(accessions)
        return {
            str(o["accession"]): str(o["decrypted_sha256"])
            for o in self.status().get("drs_objects", [])
            if o.get("accession") in wanted
        }

    def status(self) -> dict[str, Any]:
        """The sandbox's status document."""
        return dict(self._call("GET", "/status"))

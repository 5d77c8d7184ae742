"""Unit tests of the fault plan, the presign guard and small helpers."""

from __future__ import annotations

from typing import Any

from ghga_sandbox.datahub import file_extension
from ghga_sandbox.faults import FaultPlan, FaultSettings, StatusRule, UrlExpiryRule
from ghga_sandbox.storage import PresignGuard, bucket_name, presigned_expiry


def test_status_rules_are_counted_and_matched() -> None:
    plan = FaultPlan()
    plan.arm(
        FaultSettings(
            status_rules=[
                StatusRule(
                    service="ucs", status=429, count=2, method="POST", path_contains="/uploads"
                )
            ]
        )
    )
    assert plan.take_status("ucs", "GET", "/ucs/boxes/x/uploads") is None
    assert plan.take_status("wps", "POST", "/ucs/boxes/x/uploads") is None
    assert plan.take_status("ucs", "POST", "/ucs/boxes/x/uploads") is not None
    assert plan.take_status("ucs", "post", "/ucs/boxes/y/uploads") is not None
    assert plan.take_status("ucs", "POST", "/ucs/boxes/x/uploads") is None
    assert plan.injected["status:ucs:429"] == 2


def test_counted_switches_and_reset() -> None:
    plan = FaultPlan()
    plan.arm(FaultSettings(dcs_force_202=2, etag_mismatch=1))
    assert [plan.take("dcs_force_202") for _ in range(3)] == [True, True, False]
    plan.reset()
    assert plan.take("etag_mismatch") is False
    assert plan.injected["dcs_force_202"] == 2
    assert plan.snapshot()["armed"] == {
        "status_rules": [],
        "url_expiry": None,
        "drop_connections": [],
    }


def test_api_latency_switch() -> None:
    plan = FaultPlan()
    assert plan.api_latency_ms(50) == 50  # nothing armed: serve's --api-latency-ms
    plan.arm(FaultSettings(api_latency_ms=200))
    assert plan.api_latency_ms(50) == 200
    assert plan.api_latency_ms(50) == 200  # a setting, not consumed per call
    plan.arm(FaultSettings(etag_mismatch=1))  # other switches leave it alone
    assert plan.api_latency_ms(0) == 200
    assert plan.snapshot()["armed"]["api_latency_ms"] == 200  # type: ignore[index]
    plan.arm(FaultSettings(api_latency_ms=0))  # switched off even if serve set one
    assert plan.api_latency_ms(50) == 0
    plan.reset()
    assert plan.api_latency_ms(50) == 50
    assert "api_latency_ms" not in plan.snapshot()["armed"]  # type: ignore[operator]
    assert not plan.injected


def test_url_expiry_override() -> None:
    plan = FaultPlan()
    plan.arm(FaultSettings(url_expiry=UrlExpiryRule(seconds=2, count=1, kind="download")))
    assert plan.url_expiry("upload", 3600) == 3600
    assert plan.url_expiry("download", 30) == 2
    assert plan.url_expiry("download", 30) == 30


def test_presigned_expiry_parsing() -> None:
    assert presigned_expiry({}) is None
    assert (
        presigned_expiry({"X-Amz-Date": ["20260101T000000Z"], "X-Amz-Expires": ["30"]})
        == 1767225630.0
    )
    assert presigned_expiry({"Expires": ["100"], "Signature": ["x"]}) == 100.0


def _call(guard: PresignGuard, query: str) -> tuple[str, bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"] = status

    body = b"".join(guard({"QUERY_STRING": query, "REQUEST_METHOD": "GET"}, start_response))
    return seen["status"], body


def test_presign_guard_rejects_expired_urls_and_injects_faults() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"moto"]

    plan = FaultPlan()
    guard = PresignGuard(app, plan, clock=lambda: 1767225640.0)
    status, body = _call(guard, "X-Amz-Date=20260101T000000Z&X-Amz-Expires=30")
    assert status.startswith("403") and b"AccessDenied" in body
    assert _call(guard, "X-Amz-Date=20260101T000000Z&X-Amz-Expires=60")[0] == "200 OK"
    assert _call(guard, "")[0] == "200 OK"
    plan.arm(FaultSettings(status_rules=[StatusRule(service="s3", status=503)]))
    assert _call(guard, "X-Amz-Date=20260101T000000Z&X-Amz-Expires=60")[0].startswith("503")
    assert _call(guard, "X-Amz-Date=20260101T000000Z&X-Amz-Expires=60")[0] == "200 OK"


def test_file_extension_and_bucket_names() -> None:
    assert file_extension("sample.bam") == ".bam"
    assert file_extension("10_donors.selected_sites.vcf.gz") == ".vcf.gz"
    assert file_extension("README") == ""
    assert file_extension("x.gz") == ".gz"
    assert bucket_name("HD01", "outbox") == "hd01-outbox"


def test_download_integrity_switches_are_counted() -> None:
    plan = FaultPlan()
    plan.arm(
        FaultSettings(
            drs_no_checksum=1,
            drs_wrong_checksum=2,
            swap_segments=1,
            envelope_two_packets=1,
            wrong_content_range=1,
        )
    )
    armed = plan.snapshot()["armed"]
    assert isinstance(armed, dict)
    assert armed["drs_wrong_checksum"] == 2 and armed["wrong_content_range"] == 1
    assert [plan.take("drs_wrong_checksum") for _ in range(3)] == [True, True, False]
    assert plan.take("swap_segments") and not plan.take("swap_segments")
    assert plan.take_s3_range_shift("PUT") is None  # only ranged GETs
    assert plan.take_s3_range_shift("GET") == 65_564
    assert plan.take_s3_range_shift("GET") is None
    plan.arm(FaultSettings(put_wrong_etag=1))
    assert not plan.take_s3_etag_forgery("GET")
    assert plan.take_s3_etag_forgery("PUT")
    assert not plan.take_s3_etag_forgery("PUT")
    assert plan.injected["wrong_content_range"] == 1


def test_presign_guard_moves_the_range_by_one_segment() -> None:
    ranges: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        ranges.append(environ.get("HTTP_RANGE", ""))
        start_response("206 Partial Content", [])
        return [b""]

    plan = FaultPlan()
    guard = PresignGuard(app, plan, clock=lambda: 1767225640.0)
    query = "X-Amz-Date=20260101T000000Z&X-Amz-Expires=60"
    plan.arm(FaultSettings(wrong_content_range=3))
    for asked in ("bytes=0-99", "bytes=131128-131227", "bytes=70000-70099"):
        list(guard({"QUERY_STRING": query, "REQUEST_METHOD": "GET", "HTTP_RANGE": asked}, lambda *a: None))  # fmt: skip
    list(guard({"QUERY_STRING": query, "REQUEST_METHOD": "GET", "HTTP_RANGE": "bytes=0-9"}, lambda *a: None))  # fmt: skip
    assert ranges == ["bytes=65564-65663", "bytes=65564-65663", "bytes=4436-4535", "bytes=0-9"]

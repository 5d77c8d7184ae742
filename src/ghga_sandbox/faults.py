"""Explicit, counted fault injection (contract §6.3 "fault switches").

Every switch is armed through the admin API with a count and is consumed one use at a
time; :attr:`FaultPlan.injected` counts what actually fired. Nothing is random.

Switches:

* ``status_rules``: the next ``count`` calls to a service (``wkvs``, ``wps``, ``ucs``,
  ``dcs`` or ``s3``; optionally only one HTTP method and/or paths containing a string)
  answer ``status`` (e.g. 429, 500, 503), with ``Retry-After`` if given (a number of
  seconds, or any text such as ``nan``, ``-5`` or ``1e12`` to test the client's clamps).
  ``/health`` is never affected.
* ``dcs_force_202``: the next N ``GET /objects/{accession}`` answer 202 even if staged.
* ``dcs_retry_after``: the next ``count`` DCS 202 answers carry ``Retry-After: value``
  (any text: ``nan``, ``1e12``, ``-1``) instead of the computed wait.
* ``etag_mismatch`` / ``size_mismatch``: the next N completions see a forged ETag /
  size, so UCS answers 400 ``checksumMismatch`` / ``uploadSizeMismatch``.
* ``url_expiry``: the next ``count`` presigned URLs (``upload``, ``download`` or
  ``any``) expire after ``seconds`` instead of the configured lifetime.
* ``access_check_error``: the next N WPS access checks fail ("Failed to check …").
* ``dcs_missing_secret``: the next N DCS envelope requests find no file secret (500
  ``internalServerError`` "Internal Server Error.", as the real DCS answers).
* ``drop_connections``: the next ``count`` presigned object GETs/PUTs (optionally only
  one method) are cut after ``after_bytes`` bytes of the body: a GET response declares
  its full ``Content-Length`` and the connection is closed after ``after_bytes``; a PUT
  request body is read up to ``after_bytes`` and the connection is closed without an
  answer (S3 never sees the part).

Download integrity switches (each counted; the connector must notice every one):

* ``drs_no_checksum``: the next N DRS objects (200 answers) carry no ``sha-256``.
* ``drs_wrong_checksum``: the next N DRS objects carry a wrong ``sha-256``.
* ``swap_segments``: the next N stagings (copy to the outbox) store the object with its
  first two Crypt4GH segments swapped (every segment still authenticates).
* ``envelope_two_packets``: the next N envelopes hold two header packets (the user's
  and one for a random key), 232 bytes instead of 124.
* ``wrong_content_range``: the next N presigned ranged GETs are served the range one
  Crypt4GH segment (65,564 bytes) away, as a 206 whose ``Content-Range`` names the bytes
  actually sent, so it does not match the request.

One setting is not counted: ``api_latency_ms`` replaces ``serve --api-latency-ms`` (the
delay added to every service call except ``/health``) until it is armed again or the
plan is reset; the benchmark uses it to switch latency on and off on a running sandbox.

Revoking access and expiring a work package are state changes, not faults: see the
admin routes ``/admin/work-packages/{id}/revoke`` and ``…/expire``.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from typing import Literal

from pydantic import BaseModel, Field, field_validator

__all__ = [
    "DropRule",
    "FaultPlan",
    "FaultSettings",
    "RetryAfterRule",
    "StatusRule",
    "UrlExpiryRule",
]

_INTEGRITY_SWITCHES = (
    "drs_no_checksum",
    "drs_wrong_checksum",
    "swap_segments",
    "envelope_two_packets",
    "wrong_content_range",
    "put_wrong_etag",
)
#: How far ``wrong_content_range`` moves a range: one Crypt4GH ciphertext segment.
RANGE_SHIFT = 65_564

Service = Literal["wkvs", "wps", "ucs", "dcs", "s3"]


class StatusRule(BaseModel):
    """Answer ``status`` to the next ``count`` matching calls."""

    service: Service
    status: int = Field(ge=400, le=599)
    count: int = Field(default=1, ge=1)
    method: str | None = None
    path_contains: str | None = None
    retry_after: int | str | None = Field(
        default=None,
        description="Seconds, or any header text (e.g. 'nan', '-5', '1e12') for clamp tests.",
    )

    @field_validator("retry_after")
    @classmethod
    def _header_safe(cls, value: int | str | None) -> int | str | None:
        return _header_value(value)


def _header_value(value: int | str | None) -> int | str | None:
    if isinstance(value, int) and value < 0:
        raise ValueError("use a string such as '-5' for a negative Retry-After")
    if isinstance(value, str) and not re.fullmatch(r"[ -~]{1,64}", value):
        raise ValueError("must be 1 to 64 printable ASCII characters")
    return value


class RetryAfterRule(BaseModel):
    """The next ``count`` DCS 202 answers carry ``Retry-After: value``."""

    value: str
    count: int = Field(default=1, ge=1)

    @field_validator("value")
    @classmethod
    def _header_safe(cls, value: str) -> str:
        _header_value(value)
        return value


class UrlExpiryRule(BaseModel):
    """Presign the next ``count`` URLs of ``kind`` with a lifetime of ``seconds``."""

    seconds: int = Field(ge=1)
    count: int = Field(default=1, ge=1)
    kind: Literal["upload", "download", "any"] = "any"


class DropRule(BaseModel):
    """Cut the next ``count`` presigned object transfers after ``after_bytes`` body bytes."""

    count: int = Field(default=1, ge=1)
    after_bytes: int = Field(default=65536, ge=0)
    method: Literal["GET", "PUT"] | None = None


class FaultSettings(BaseModel):
    """Body of ``POST /admin/faults``: switches to arm (added to those already armed)."""

    status_rules: list[StatusRule] = Field(default_factory=list)
    dcs_force_202: int = Field(default=0, ge=0)
    dcs_retry_after: RetryAfterRule | None = None
    etag_mismatch: int = Field(default=0, ge=0)
    size_mismatch: int = Field(default=0, ge=0)
    url_expiry: UrlExpiryRule | None = None
    access_check_error: int = Field(default=0, ge=0)
    dcs_missing_secret: int = Field(default=0, ge=0)
    drs_no_checksum: int = Field(default=0, ge=0)
    drs_wrong_checksum: int = Field(default=0, ge=0)
    swap_segments: int = Field(default=0, ge=0)
    envelope_two_packets: int = Field(default=0, ge=0)
    wrong_content_range: int = Field(default=0, ge=0)
    put_wrong_etag: int = Field(default=0, ge=0)
    drop_connections: DropRule | None = None
    api_latency_ms: int | None = Field(
        default=None,
        ge=0,
        description="Delay added to every service call from now on (replaces the "
        "--api-latency-ms of serve until reset; not counted).",
    )


class FaultPlan:
    """Thread-safe armed switches and counters of fired faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[StatusRule] = []
        self._counts: Counter[str] = Counter()
        self._url_expiry: UrlExpiryRule | None = None
        self._drops: list[DropRule] = []
        self._dcs_retry_after: RetryAfterRule | None = None
        self._fault_request_ids: list[str] = []
        self._api_latency_ms: int | None = None
        self.injected: Counter[str] = Counter()

    def arm(self, settings: FaultSettings) -> None:
        """Add the given switches to the plan."""
        with self._lock:
            self._rules.extend(rule.model_copy() for rule in settings.status_rules)
            for name in (
                "dcs_force_202",
                "etag_mismatch",
                "size_mismatch",
                "access_check_error",
                "dcs_missing_secret",
            ):
                self._counts[name] += getattr(settings, name)
            for name in _INTEGRITY_SWITCHES:
                self._counts[name] += getattr(settings, name)
            if settings.url_expiry is not None:
                self._url_expiry = settings.url_expiry.model_copy()
            if settings.drop_connections is not None:
                self._drops.append(settings.drop_connections.model_copy())
            if settings.dcs_retry_after is not None:
                self._dcs_retry_after = settings.dcs_retry_after.model_copy()
            if settings.api_latency_ms is not None:
                self._api_latency_ms = settings.api_latency_ms

    def reset(self) -> None:
        """Disarm everything (latency back to the configured one); keep the fired counters."""
        with self._lock:
            self._rules.clear()
            self._counts.clear()
            self._url_expiry = None
            self._drops.clear()
            self._dcs_retry_after = None
            self._api_latency_ms = None

    def api_latency_ms(self, default: int) -> int:
        """The delay for service calls: the armed ``api_latency_ms``, else ``default``."""
        with self._lock:
            return default if self._api_latency_ms is None else self._api_latency_ms

    def take_status(self, service: Service, method: str, path: str) -> StatusRule | None:
        """Consume one use of the first matching status rule, if any."""
        with self._lock:
            for rule in self._rules:
                if rule.service != service:
                    continue
                if rule.method and rule.method.upper() != method.upper():
                    continue
                if rule.path_contains and rule.path_contains not in path:
                    continue
                rule.count -= 1
                if rule.count <= 0:
                    self._rules.remove(rule)
                self.injected[f"status:{service}:{rule.status}"] += 1
                return rule
        return None

    def record_request_id(self, request_id: str) -> None:
        """Remember the ``X-Request-Id`` of an injected status answer (the last 100)."""
        with self._lock:
            self._fault_request_ids = [*self._fault_request_ids[-99:], request_id]

    def take_s3_fault(self, method: str) -> tuple[int, int | None] | None:
        """:class:`~ghga_sandbox.storage.PresignGuard` hook for ``service="s3"`` rules."""
        rule = self.take_status("s3", method, "")
        return None if rule is None else (rule.status, rule.retry_after)

    def take_s3_drop(self, method: str) -> int | None:
        """Consume one matching ``drop_connections`` use; return the bytes to let through."""
        with self._lock:
            for rule in self._drops:
                if rule.method is not None and rule.method != method.upper():
                    continue
                rule.count -= 1
                if rule.count <= 0:
                    self._drops.remove(rule)
                self.injected[f"drop:s3:{method.upper()}"] += 1
                return rule.after_bytes
        return None

    def take_dcs_retry_after(self) -> str | None:
        """Consume one use of ``dcs_retry_after``; the header value, if armed."""
        with self._lock:
            rule = self._dcs_retry_after
            if rule is None:
                return None
            rule.count -= 1
            if rule.count <= 0:
                self._dcs_retry_after = None
            self.injected["dcs_retry_after"] += 1
            return rule.value

    def take_s3_range_shift(self, method: str) -> int | None:
        """Consume one ``wrong_content_range`` use for a ranged GET; return the shift."""
        if method.upper() != "GET" or not self.take("wrong_content_range"):
            return None
        return RANGE_SHIFT

    def take_s3_etag_forgery(self, method: str) -> bool:
        """Consume one ``put_wrong_etag`` use for a presigned part ``PUT``."""
        return method.upper() == "PUT" and self.take("put_wrong_etag")

    def take(self, name: str) -> bool:
        """Consume one use of a counted switch; return whether it fired."""
        with self._lock:
            if self._counts[name] <= 0:
                return False
            self._counts[name] -= 1
            self.injected[name] += 1
            return True

    def url_expiry(self, kind: Literal["upload", "download"], default: int) -> int:
        """Lifetime in seconds for the next presigned URL of ``kind``."""
        with self._lock:
            rule = self._url_expiry
            if rule is None or rule.kind not in (kind, "any"):
                return default
            rule.count -= 1
            if rule.count <= 0:
                self._url_expiry = None
            self.injected[f"url_expiry:{kind}"] += 1
            return rule.seconds

    def snapshot(self) -> dict[str, object]:
        """Armed switches, fired counters and the injected answers' request ids.

        For ``/admin/status`` and ``/admin/faults``; request ids oldest first.
        """
        with self._lock:
            armed: dict[str, object] = {
                "status_rules": [rule.model_dump() for rule in self._rules],
                **{name: count for name, count in self._counts.items() if count > 0},
                "url_expiry": None if self._url_expiry is None else self._url_expiry.model_dump(),
                "drop_connections": [rule.model_dump() for rule in self._drops],
            }
            if self._dcs_retry_after is not None:
                armed["dcs_retry_after"] = self._dcs_retry_after.model_dump()
            if self._api_latency_ms is not None:  # only while it replaces --api-latency-ms
                armed["api_latency_ms"] = self._api_latency_ms
            return {
                "armed": armed,
                "injected": dict(self.injected),
                "request_ids": list(self._fault_request_ids),
            }

"""The ASGI application: every service mounted under its production prefix.

``create_app(settings, state, storage)`` is the only way to get an app (no module-level
instance). Prefixes (contract §1.1): WKVS ``/.well-known``, WPS ``/wps``, UCS ``/ucs``,
DCS ``/ga4gh/drs/v1``, plus the sandbox's own ``/admin``.

:class:`SandboxMiddleware` answers every request with an ``X-Request-Id`` (the client's if
it is a UUID, else a new one, as the real services do), adds ``--api-latency-ms`` (or the
``api_latency_ms`` armed through ``POST /admin/faults``, which replaces it at run time) and
answers armed status faults before a request reaches a service (never for
``/health``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ghga_sandbox.config import SandboxSettings
from ghga_sandbox.faults import FaultPlan, Service
from ghga_sandbox.routes.admin import create_admin_app
from ghga_sandbox.routes.dcs import create_dcs_app
from ghga_sandbox.routes.ucs import create_ucs_app
from ghga_sandbox.routes.wkvs import create_wkvs_app
from ghga_sandbox.routes.wps import create_wps_app
from ghga_sandbox.runtime import Runtime
from ghga_sandbox.sinks3 import SinkStore
from ghga_sandbox.staging import Stager
from ghga_sandbox.state import SandboxState
from ghga_sandbox.storage import S3Storage
from ghga_sandbox.uploads import UploadController

__all__ = ["PREFIXES", "SandboxMiddleware", "create_app"]

log = logging.getLogger(__name__)

PREFIXES: dict[str, Service] = {
    "/.well-known": "wkvs",
    "/wps": "wps",
    "/ucs": "ucs",
    "/ga4gh/drs/v1": "dcs",
}
"""Production path prefix → service name (the fault plan's names)."""


def service_of(path: str) -> Service | None:
    """The service a request path belongs to, or ``None`` (admin, root)."""
    for prefix, service in PREFIXES.items():
        if path == prefix or path.startswith(prefix + "/"):
            return service
    return None


def _fault_body(service: Service, status: int) -> dict[str, Any]:
    if service == "dcs" and status == 500:
        return {
            "data": {},
            "description": "Internal Server Error.",
            "exception_id": "internalServerError",
        }
    if service in {"ucs", "dcs"}:
        if status == 500:
            return {
                "exception_id": "internalError",
                "description": "An internal server error has occurred.",
                "data": {},
            }
        return {
            "data": {},
            "description": "Fault injected by ghga-sandbox.",
            "exception_id": "injectedFault",
        }
    return {"detail": "Fault injected by ghga-sandbox."}


def correlation_id(sent: str | None) -> str:
    """The request id a GHGA service answers with (``X-Request-Id``, ghga-service-commons).

    The id the client sent if it is a UUID (any form ``uuid.UUID`` accepts), else a new
    UUID4, so every answer carries one.
    """
    if sent:
        try:
            uuid.UUID(sent)
        except ValueError:
            pass
        else:
            return sent
    return str(uuid.uuid4())


class SandboxMiddleware:
    """Pure ASGI middleware: request ids, artificial latency, injected statuses."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self._app = app
        self._rt = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one request."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path: str = scope["path"]
        request_id = correlation_id(
            next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        )

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *(h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        service = service_of(path)
        if service is not None and not path.endswith("/health"):
            latency_ms = self._rt.faults.api_latency_ms(self._rt.settings.api_latency_ms)
            if latency_ms:
                await asyncio.sleep(latency_ms / 1000)
            rule = self._rt.faults.take_status(service, scope["method"], path)
            if rule is not None:
                self._rt.faults.record_request_id(request_id)
                body = json.dumps(_fault_body(service, rule.status)).encode()
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                if rule.retry_after is not None:
                    headers.append((b"retry-after", str(rule.retry_after).encode()))
                await send_with_id(
                    {"type": "http.response.start", "status": rule.status, "headers": headers}
                )
                await send_with_id({"type": "http.response.body", "body": body})
                return
        await self._app(scope, receive, send_with_id)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    return JSONResponse({"message": "Internal Server Error."}, status_code=500)


def create_app(
    settings: SandboxSettings,
    state: SandboxState,
    storage: S3Storage,
    *,
    faults: FaultPlan | None = None,
    stager: Stager | None = None,
    clock: Callable[[], float] = time.time,
    sink: SinkStore | None = None,
) -> FastAPI:
    """Build the sandbox application over the given state and storage.

    ``faults`` defaults to an empty plan; ``stager`` to one with ``staging_delay``;
    ``sink`` is the store of ``--s3 sink``.
    The stager's threads are shut down when the app's lifespan ends.
    """
    plan = faults if faults is not None else FaultPlan()
    the_stager = stager or Stager(
        state, storage, delay=settings.staging_delay, clock=clock, faults=plan
    )
    runtime = Runtime(
        settings=settings,
        state=state,
        storage=storage,
        faults=plan,
        stager=the_stager,
        clock=clock,
        sink=sink,
    )
    controller = UploadController(runtime)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        the_stager.shutdown()

    app = FastAPI(title="ghga-sandbox", lifespan=lifespan)
    services = {
        "/.well-known": create_wkvs_app(runtime),
        "/wps": create_wps_app(runtime),
        "/ucs": create_ucs_app(runtime, controller),
        "/ga4gh/drs/v1": create_dcs_app(runtime),
    }
    for prefix, sub_app in services.items():
        if prefix != "/ucs":
            sub_app.add_exception_handler(Exception, _unhandled)
        app.mount(prefix, sub_app)
    app.mount("/admin", create_admin_app(runtime, controller))

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness of the whole sandbox."""
        return {"status": "OK"}

    app.add_middleware(SandboxMiddleware, runtime=runtime)
    app.state.runtime = runtime
    return app

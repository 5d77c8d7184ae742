"""The one request helper every GHGA service client is built around.

:func:`send` sends a request through the shared ``httpx.AsyncClient`` (whose transport
retries transport errors and 5xx answers), turns network failures into
:class:`~ghga_connector.errors.ServiceUnreachableError` and any status outside ``ok``
into the :class:`~ghga_connector.errors.ServerResponseError` subclass the caller names.
:class:`WorkOrderTokenAuth` attaches work order tokens (WOTs) and resends once with a
new one on 401/403.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Collection
from typing import Any

import httpx

from ghga_connector.adapters.responses import network_errors, server_error
from ghga_connector.errors import ServerResponseError
from ghga_connector.models import TokenSource

__all__ = ["JSON_HEADERS", "WorkOrderTokenAuth", "max_age", "send"]

JSON_HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}


def max_age(response: httpx.Response) -> float | None:
    """``max-age`` of a ``Cache-Control`` response header, in seconds."""
    for directive in response.headers.get("Cache-Control", "").split(","):
        name, _, value = directive.strip().partition("=")
        if name.lower() == "max-age":
            try:
                return float(value)
            except ValueError:
                return None
    return None


class WorkOrderTokenAuth(httpx.Auth):
    """Attach ``Authorization: Bearer <WOT>``; on 401/403 fetch a new WOT and resend once.

    ``token`` is called with ``force_new=False`` first and ``True`` for the retry.
    """

    def __init__(self, token: TokenSource) -> None:
        self._token = token

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """The httpx authentication flow (see ``httpx.Auth``).

        Raises:
            ConnectorError: whatever the token source raises.
        """
        request.headers["Authorization"] = f"Bearer {await self._token(False)}"
        response = yield request
        if response.status_code in (401, 403):
            await response.aread()
            request.headers["Authorization"] = f"Bearer {await self._token(True)}"
            yield request


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    target: str,
    action: str,
    ok: Collection[int],
    token: TokenSource | None = None,
    error_class: type[ServerResponseError] = ServerResponseError,
    check: Callable[[httpx.Response], None] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request to a GHGA service and map its failures to connector errors.

    ``target`` names the service for network errors (never a presigned URL);
    ``action`` starts the message of an unexpected status (e.g. ``"Completing the
    upload"``); ``ok`` lists the expected statuses; ``token`` attaches WOTs through
    :class:`WorkOrderTokenAuth`; ``check`` may raise for a status before the ``ok``
    test (the WPS maps 403 to :class:`~ghga_connector.errors.AccessDeniedError`).
    Further keyword arguments go to ``httpx.AsyncClient.request``.

    Raises:
        ServiceUnreachableError: no answer after the transport's retries.
        ServerResponseError: a status outside ``ok`` (as ``error_class``).
    """
    auth = WorkOrderTokenAuth(token) if token is not None else httpx.USE_CLIENT_DEFAULT
    with network_errors(target):
        response = await client.request(method, url, auth=auth, **kwargs)
    if check is not None:
        check(response)
    if response.status_code not in ok:
        raise server_error(response, action, error_class=error_class)
    return response

"""A proxy.py plugin that appends one line per proxied request to ``$PROXY_COUNT_FILE``.

proxy.py's own access log has one line per client connection, not per request; this
plugin sees every request of a kept-alive connection. Only the method, host, port and
path are written (never the query: presigned URL signatures).
"""

from __future__ import annotations

import os
from typing import Any

from proxy.http.proxy import HttpProxyBasePlugin


class CountingPlugin(HttpProxyBasePlugin):  # type: ignore[misc]
    """Counts requests; forwards them unchanged."""

    def handle_client_request(self, request: Any) -> Any:
        """Record the request, then let proxy.py forward it."""
        method = (request.method or b"").decode("latin-1")
        host = (request.host or b"").decode("latin-1")
        path = (request.path or b"").decode("latin-1").split("?", 1)[0]
        with open(os.environ["PROXY_COUNT_FILE"], "a", encoding="utf-8") as log:
            log.write(f"{method} {host}:{request.port} {path}\n")
        return request

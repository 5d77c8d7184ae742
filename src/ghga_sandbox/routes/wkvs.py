"""Well-Known Value Service, mounted at ``/.well-known`` (contract §1.1).

``GET /values`` → 200 with all values; ``GET /values/{name}`` → 200 ``{name: value}``
or 404 ``{"detail": "The value X is not configured"}``; ``GET /health``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException

from ghga_sandbox.runtime import Runtime
from ghga_sandbox.tokens import b64_public_key

__all__ = ["create_wkvs_app", "well_known_values"]


def well_known_values(runtime: Runtime) -> dict[str, Any]:
    """The WKVS values: Data Hub keys per storage alias, S3 endpoints, service URLs."""
    settings = runtime.settings
    aliases = list(settings.storage_labels)
    return {
        "crypt4gh_public_keys": {
            alias: b64_public_key(runtime.state.datahub_key(alias).public) for alias in aliases
        },
        # the real WKVS serves these as pydantic URLs, which end with "/"
        "storage_aliases": {
            alias: runtime.storage.endpoint_url.rstrip("/") + "/" for alias in aliases
        },
        "storage_labels": dict(settings.storage_labels),
        "wps_api_url": settings.wps_api_url,
        "ucs_api_url": settings.ucs_api_url,
        "dcs_api_url": settings.dcs_api_url,
    }


def create_wkvs_app(runtime: Runtime) -> FastAPI:
    """The WKVS sub-application."""
    app = FastAPI(title="Well-Known Value Service (ghga-sandbox)", version="3.0.1")

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: 200 ``{"status":"OK"}``."""
        return {"status": "OK"}

    @app.get("/values")
    def get_values() -> dict[str, Any]:
        """All configured values (no auth)."""
        return well_known_values(runtime)

    @app.get("/values/{value_name}")
    def get_value(value_name: str) -> dict[str, Any]:
        """One value as ``{name: value}``; 404 if not configured."""
        values = well_known_values(runtime)
        if value_name not in values:
            raise HTTPException(404, detail=f"The value {value_name} is not configured")
        return {value_name: values[value_name]}

    return app

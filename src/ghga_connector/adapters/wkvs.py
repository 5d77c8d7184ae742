"""The well-known value service client (contract §1.1)."""

from __future__ import annotations

import httpx
from pydantic import ValidationError

from ghga_connector.adapters.request import send
from ghga_connector.adapters.responses import request_id_of, url_host
from ghga_connector.errors import ServerResponseError
from ghga_connector.models import WellKnownValues

__all__ = ["WkvsClient"]


class WkvsClient:
    """The well-known value service."""

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self._client = client
        self._base = base_url.rstrip("/")

    async def get_values(self) -> WellKnownValues:
        """``GET {wkvs}/values``.

        Raises:
            ServiceUnreachableError: the service cannot be reached.
            ServerResponseError: non-200, or a required value is missing.
        """
        response = await send(
            self._client,
            "GET",
            f"{self._base}/values",
            target=f"the GHGA well-known value service at {url_host(self._base)}",
            action="Reading the GHGA service configuration",
            ok=(200,),
        )
        try:
            return WellKnownValues.model_validate(response.json())
        except (ValidationError, ValueError) as error:
            # A body that is no JSON object has errors without a field name: "body".
            missing = (
                ", ".join(str(e["loc"][0]) if e["loc"] else "body" for e in error.errors())
                if isinstance(error, ValidationError)
                else "body"
            )
            raise ServerResponseError(
                f"The well-known value service lacks required values ({missing}).",
                hint="Check 'wkvs_api_url' in your configuration.",
                request_id=request_id_of(response),
            ) from None

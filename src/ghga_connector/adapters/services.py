"""The GHGA service clients, re-exported from their modules. URLs are built only there.

* :class:`WkvsClient` (:mod:`.wkvs`): well-known value service (contract §1.1);
* :class:`WpsClient` (:mod:`.wps`): work package service (contract §3.1);
* :class:`UcsClient` (:mod:`.ucs`): upload controller service (contract §3.3);
* :class:`DcsClient` (:mod:`.dcs`): download controller service, DRS objects (§3.4);
* :class:`ObjectStorageClient` (:mod:`.storage`): S3 through presigned URLs (§3.5).

Each is built around :func:`ghga_connector.adapters.request.send`, which maps network
failures and unexpected statuses to connector errors; work order tokens are attached
by :class:`~ghga_connector.adapters.request.WorkOrderTokenAuth`. The core sees these
clients only through the ports in :mod:`ghga_connector.core.ports`.
"""

from __future__ import annotations

from ghga_connector.adapters.dcs import DcsClient
from ghga_connector.adapters.request import WorkOrderTokenAuth
from ghga_connector.adapters.storage import ObjectStorageClient, RateFloor
from ghga_connector.adapters.ucs import UcsClient
from ghga_connector.adapters.wkvs import WkvsClient
from ghga_connector.adapters.wps import WpsClient
from ghga_connector.errors import BodyBrokenError, PresignedUrlExpired
from ghga_connector.models import Staging, TokenSource, UploadWorkType

__all__ = [
    "BodyBrokenError",
    "DcsClient",
    "ObjectStorageClient",
    "PresignedUrlExpired",
    "RateFloor",
    "Staging",
    "TokenSource",
    "UcsClient",
    "UploadWorkType",
    "WkvsClient",
    "WorkOrderTokenAuth",
    "WpsClient",
]

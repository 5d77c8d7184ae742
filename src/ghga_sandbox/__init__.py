"""ghga-sandbox: a local re-implementation of the GHGA upload and download services.

One process serves the Well-Known Value Service (WKVS), the Work Package Service
(WPS), the Upload Controller Service (UCS) and the Download Controller Service (DCS)
under their production prefixes, backed by an embedded S3 (moto) or any S3 endpoint,
with state in SQLite. See ``docs/sandbox.md`` and the API contract
(``ghga-api-contract.md`` §6). Nothing happens at import time.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"

"""Settings of one sandbox run.

A frozen pydantic model built by the CLI (``ghga-sandbox serve``) from its options and
passed down; nothing reads the environment or files at import time.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TIB", "SandboxSettings"]

TIB = 1 << 40
"""One tebibyte in bytes: the default ``max_size`` of a new file upload box."""


class SandboxSettings(BaseModel):
    """Everything a running sandbox needs to know; all durations in seconds.

    ``public_url`` is the base URL clients use (``http://127.0.0.1:<port>``); the CLI
    fills it in after binding the socket, so ``--port 0`` works.
    """

    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str = "http://127.0.0.1:8080"
    state_dir: Path = Path(".ghga-sandbox")
    s3: str = Field(
        default="moto",
        description="'moto' for an embedded moto S3 server, 'seaweedfs' for a SeaweedFS "
        "started with the sandbox, else an S3 endpoint URL (credentials from the AWS_* "
        "environment variables).",
    )
    s3_proxy: bool = Field(
        default=False,
        description="Serve presigned URLs through the fault proxy in front of a non-moto S3 "
        "(embedded moto always has the guard in-process).",
    )
    s3_region: str = "us-east-1"
    storage_labels: dict[str, str] = Field(
        default_factory=lambda: {"HD01": "Heidelberg"},
        description="Storage alias → label; one Data Hub key pair and bucket set each.",
    )
    staging_delay: float = Field(
        default=1.0, ge=0, description="Seconds from the first DCS request until staged."
    )
    retry_after: int = Field(default=1, ge=0, description="Minimum DCS Retry-After in seconds.")
    download_url_expiry: int = Field(
        default=30, ge=1, description="Lifetime of presigned download URLs (DCS) in seconds."
    )
    upload_url_expiry: int = Field(
        default=3600, ge=1, description="Lifetime of presigned part-upload URLs (UCS) in seconds."
    )
    api_latency_ms: int = Field(
        default=0, ge=0, description="Delay added to every API call except /health and /admin."
    )
    wot_lifetime: int = Field(
        default=30, ge=1, description="Work order token lifetime (exp - iat) in seconds."
    )
    wot_leeway: int = Field(
        default=60,
        ge=0,
        description="Seconds a WOT is still accepted after its exp claim (60: jwcrypto's "
        "default, as in the real services; 0 makes the client's refresh path testable).",
    )
    work_package_valid_days: int = Field(default=30, ge=1)
    box_max_size: int = Field(
        default=TIB, ge=1, description="Default max_size of new boxes (bytes)."
    )
    max_concurrent_uploads: int = Field(
        default=5, ge=1, description="Uploads in 'init' per box before create returns 429."
    )
    synthetic_cache_dir: Path | None = Field(
        default=None,
        description="Folder caching the plaintext SHA-256 of synthetic objects by seed and "
        "size (--s3 sink); default <state_dir>/synthetic-cache.",
    )
    log_level: str = "warning"
    admin_token: str = Field(
        default_factory=lambda: secrets.token_urlsafe(32),
        repr=False,
        description="Bearer token of the admin API (random per start; written to "
        "<state_dir>/admin.token).",
    )

    @property
    def wkvs_api_url(self) -> str:
        """Base URL of the Well-Known Value Service."""
        return f"{self.public_url}/.well-known"

    @property
    def wps_api_url(self) -> str:
        """Base URL of the Work Package Service."""
        return f"{self.public_url}/wps"

    @property
    def ucs_api_url(self) -> str:
        """Base URL of the Upload Controller Service."""
        return f"{self.public_url}/ucs"

    @property
    def dcs_api_url(self) -> str:
        """Base URL of the Download Controller Service (GA4GH DRS)."""
        return f"{self.public_url}/ga4gh/drs/v1"

    @property
    def drs_server_uri(self) -> str:
        """``drs://host:port/`` prefix of DRS ``self_uri`` values (contract §3.4)."""
        authority = self.public_url.split("://", 1)[-1].rstrip("/")
        return f"drs://{authority}/"

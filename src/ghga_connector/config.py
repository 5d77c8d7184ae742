"""Configuration: one pydantic-settings model, built by :func:`load_config` per run.

Nothing is read at import time. Sources, highest precedence first (compatible with
ghga-connector 4.0.1):

1. values given on the command line;
2. environment variables ``GHGA_CONNECTOR_<FIELD>`` (case-insensitive);
3. a ``.env`` file in the working directory;
4. a YAML file: ``--config PATH``, else the file named by ``GHGA_CONNECTOR_CONFIG_YAML``,
   else ``./.ghga_connector.yaml``, else ``~/.ghga_connector.yaml``;
5. the defaults below.

Memory bound, whatever the size and number of files: uploads hold at most
``max_concurrent_uploads`` part buffers plus one plaintext buffer per crypto thread
(``part_size`` bytes each); downloads at most ``max_concurrent_downloads`` pairs of range
buffers (``2 × part_size``). With the defaults (16 MiB parts, 6 in flight, 2 threads)
that is about 130 MiB for uploads and 200 MiB for downloads, shared by all files. This
holds for files of any size: an upload part that grows beyond ``part_size`` (files above
~168 GB, to stay within S3's 10,000 parts) is streamed through its buffer window by
window instead of being held whole.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from dotenv import dotenv_values
from pydantic import AnyHttpUrl, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ghga_connector.errors import ConfigurationError

__all__ = [
    "CONFIG_ENV_VAR",
    "DOTENV_FILE",
    "ENV_PREFIX",
    "Config",
    "SettingSource",
    "describe_sources",
    "find_config_file",
    "load_config",
]

ENV_PREFIX = "GHGA_CONNECTOR_"
CONFIG_ENV_VAR = "GHGA_CONNECTOR_CONFIG_YAML"
CONFIG_FILE_NAME = ".ghga_connector.yaml"
#: The dotenv file read from the working directory (pydantic-settings ``env_file``).
DOTENV_FILE = ".env"


class Config(BaseSettings):
    """Settings of the connector. Field names are those of ghga-connector 4.0.1."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=DOTENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        case_sensitive=False,
    )

    wkvs_api_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("https://data.ghga.de/.well-known"),
        description="URL of the GHGA well-known value service; all other service URLs "
        "and the Data Hub public keys are read from '{wkvs_api_url}/values'.",
    )
    part_size: int = Field(
        default=16 * 1024 * 1024,
        ge=1024 * 1024,
        le=5 * 1024 * 1024 * 1024,
        description="Bytes per upload part and per download range. Uploads round it up "
        "to whole Crypt4GH segments (65,564 bytes), at least 5 MiB, and grow it so that a "
        "file needs at most 10,000 parts.",
    )
    max_concurrent_uploads: int = Field(
        default=6,
        ge=1,
        le=64,
        description="Upload parts in flight at once (all files together); each holds one "
        "part buffer of part_size bytes in memory (a larger part is streamed through it).",
    )
    max_concurrent_downloads: int = Field(
        default=6,
        ge=1,
        le=64,
        description="Download ranges in flight at once (all files together); each holds two ranges in memory.",
    )
    crypto_threads: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Threads that encrypt, decrypt and hash (Crypt4GH segments, SHA-256, "
        "MD5); each holds one plaintext buffer of part_size bytes while uploading. Default: "
        "the machine's number of cores, at least 2.",
    )
    max_parallel_files: int = Field(
        default=4,
        ge=1,
        le=5,
        description="Files transferred at the same time. Uploads are further limited by "
        "the server's limit of 5 open uploads per file upload box.",
    )
    max_wait_time: int = Field(
        default=3600,
        ge=1,
        description="Seconds to wait for a file to be staged for download before giving up.",
    )
    client_num_retries: int = Field(
        default=5, ge=1, le=50, description="Attempts per request (the first one included)."
    )
    client_exponential_backoff_max: int = Field(
        default=60, ge=0, description="Longest wait between two attempts, in seconds."
    )
    client_retry_status_codes: list[int] = Field(
        default=[408, 429, 500, 502, 503, 504],
        description="HTTP status codes that are retried with exponential backoff.",
    )
    client_reraise_from_retry_error: bool = Field(
        default=True, description="Accepted for compatibility with 4.0.1; has no effect."
    )
    per_request_jitter: float = Field(
        default=0.0,
        ge=0.0,
        description="Upper bound in seconds of a random delay added to each retry wait.",
    )
    retry_after_applicable_for_num_requests: int = Field(
        default=1, ge=1, description="Accepted for compatibility with 4.0.1; has no effect."
    )
    timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds without progress after which a request is abandoned and "
        "retried: connecting, or waiting for the next bytes of a body.",
    )
    connect_timeout: float = Field(
        default=10.0, gt=0, description="Seconds allowed to open a connection."
    )
    state_dir: Path = Field(
        default_factory=lambda: Path.home() / ".ghga_connector",
        description="Folder for the journals of unfinished uploads and their locks "
        "(created readable by you only). Default: .ghga_connector in your home folder. "
        "Jobs on several hosts should share it (see docs/hpc.md).",
    )
    proxy: str | None = Field(
        default=None,
        description="Proxy URL (http:// or https://, optionally with user:password@) for "
        "every request, to GHGA and to the object storage. Without it HTTPS_PROXY, "
        "HTTP_PROXY and ALL_PROXY are used; NO_PROXY always names hosts reached directly.",
    )
    ca_bundle: Path | None = Field(
        default=None,
        description="A PEM file of extra certificate authorities to trust (TLS is always "
        "verified; SSL_CERT_FILE is also honoured).",
    )
    my_public_key_path: Path | None = Field(
        default=None,
        description="Your Crypt4GH public key file, used when --my-public-key-path is not "
        "given. Unset: ~/.c4gh/key.pub if it exists (crypt4gh-keygen's default), else "
        "./key.pub.",
    )
    my_private_key_path: Path | None = Field(
        default=None,
        description="Your Crypt4GH private key file, used when --my-private-key-path is not "
        "given. Unset: ~/.c4gh/key if it exists (crypt4gh-keygen's default), else ./key.sec.",
    )

    @field_validator("proxy")
    @classmethod
    def _check_proxy(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host name")
        return value

    @field_validator("client_retry_status_codes")
    @classmethod
    def _check_status_codes(cls, value: list[int]) -> list[int]:
        for code in value:
            if not 100 <= code <= 599:
                raise ValueError(f"{code} is not an HTTP status code")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Precedence: arguments > environment > .env > YAML (passed as init) > defaults."""
        return (init_settings, env_settings, dotenv_settings)


def find_config_file(explicit: Path | None = None) -> Path | None:
    """The YAML configuration file to use, following the order in the module docstring.

    Raises:
        ConfigurationError: if an explicitly named file does not exist.
    """
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigurationError(f"The configuration file {str(explicit)!r} does not exist.")
        return explicit
    named = os.environ.get(CONFIG_ENV_VAR)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigurationError(
                f"The configuration file {named!r} named by {CONFIG_ENV_VAR} does not exist."
            )
        return path
    for candidate in (Path.cwd() / CONFIG_FILE_NAME, Path.home() / CONFIG_FILE_NAME):
        if candidate.is_file():
            return candidate
    return None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ConfigurationError(
            f"The configuration file {str(path)!r} is not valid YAML: {error}"
        ) from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigurationError(f"The configuration file {str(path)!r} is not a mapping.")
    values = {str(key).lower(): value for key, value in content.items()}
    _check_keys(path, values)
    return values


def _check_keys(path: Path, values: dict[str, Any]) -> None:
    """Refuse settings the connector does not know (a typo would otherwise be ignored).

    Raises:
        ConfigurationError: naming the first unknown key and the nearest valid one.
    """
    known = list(Config.model_fields)
    for key in values:
        if key in Config.model_fields:
            continue
        nearest = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        guess = f"; did you mean {nearest[0]!r}?" if nearest else "."
        raise ConfigurationError(
            f"Unknown setting {key!r} in the configuration file {str(path)!r}{guess}",
            hint="Fix or remove it; docs/configuration.md lists every setting "
            "('ghga-connector config' shows the effective values).",
        )


def _env_settings() -> tuple[set[str], set[str]]:
    """Setting names (lower case, no prefix) set in the environment, and in ``./.env``."""
    prefix = ENV_PREFIX.lower()

    def names(keys: Iterable[str]) -> set[str]:
        return {k.lower().removeprefix(prefix) for k in keys if k.lower().startswith(prefix)}

    dotenv = Path(DOTENV_FILE)
    return names(os.environ), names(dotenv_values(dotenv)) if dotenv.is_file() else set()


def load_config(config_file: Path | None = None, **overrides: Any) -> tuple[Config, Path | None]:
    """Build the configuration and return it with the YAML file it used (if any).

    ``overrides`` (command-line values) take precedence over every other source; the
    YAML file has the lowest precedence apart from the defaults.

    Raises:
        ConfigurationError: if the YAML file is missing or invalid, or a value is invalid.
    """
    path = find_config_file(config_file)
    file_values = _read_yaml(path) if path else {}
    environ, dotenv = _env_settings()
    env_names = environ | dotenv
    # YAML values are passed as init values, but must lose against the environment and .env.
    file_values = {key: value for key, value in file_values.items() if key not in env_names}
    try:
        config = Config(**{**file_values, **overrides})
    except ValidationError as error:
        problems = []
        for err in error.errors():
            field = ".".join(str(p) for p in err["loc"])
            if field in env_names:
                where = f"environment variable {ENV_PREFIX}{field.upper()}"
            elif field in file_values and path is not None:
                where = str(path)
            else:
                where = "command line"
            problems.append(f"{field} ({where}): {err['msg']}")
        raise ConfigurationError(
            "Invalid configuration: " + "; ".join(problems),
            hint="Fix the value, or remove it to use the default (see docs/configuration.md).",
        ) from None
    return config, path


@dataclass(frozen=True)
class SettingSource:
    """One row of ``ghga-connector config``: a setting, its value as text, where it came from.

    ``source`` is ``"environment"``, ``".env"``, the path of the YAML file, or ``"default"``.
    """

    setting: str
    value: str
    source: str


def describe_sources(
    config_file: Path | None = None,
    *,
    redact: Mapping[str, Callable[[str], str]] | None = None,
) -> tuple[list[SettingSource], Path | None]:
    """Every setting's effective value and its source, with the YAML file used (if any).

    The sources follow the precedence of :func:`load_config`: environment, then
    ``./.env``, then the YAML file, then the default. ``redact`` maps a setting name to
    a function that makes its (non-empty) value safe to print, e.g. a proxy password.

    Raises:
        ConfigurationError: as :func:`load_config`.
    """
    config, path = load_config(config_file)
    file_keys = set(_read_yaml(path)) if path is not None else set()
    environ, dotenv = _env_settings()
    rows = []
    for name in Config.model_fields:
        value = getattr(config, name)
        text = str(value)
        if value and redact and name in redact:
            text = redact[name](text)
        if name in environ:
            source = "environment"
        elif name in dotenv:
            source = DOTENV_FILE
        elif name in file_keys:
            source = str(path)
        else:
            source = "default"
        rows.append(SettingSource(name, text, source))
    return rows, path

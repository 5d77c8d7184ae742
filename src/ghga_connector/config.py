"""Configuration: one pydantic-settings model, built by :func:`load_config` per run.

Nothing is read at import time. Sources, highest precedence first:

1. values given on the command line;
2. environment variables ``GHGA_CONNECTOR_<FIELD>`` (case-insensitive);
3. a YAML file named explicitly: ``--config PATH``, else the file named by
   ``GHGA_CONNECTOR_CONFIG_YAML``;
4. a ``.env`` file in the working directory;
5. else a YAML file found: ``./.ghga_connector.yaml``, else ``~/.ghga_connector.yaml``;
6. the defaults below.

Only one YAML file is read. Files in the working directory (``.env``,
``./.ghga_connector.yaml``) are ignored, with a warning, when another user owns them or
others may write to them: in a shared folder they could otherwise redirect
``wkvs_api_url``, and with it the Data Hub public key uploads are encrypted to. An
``http://`` ``wkvs_api_url`` is refused unless its host is this machine (the sandbox) or
``allow_http_wkvs`` is set. Unknown ``GHGA_CONNECTOR_*`` environment variables and
``.env`` keys get a warning naming the closest setting; unknown YAML keys are an error.

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
import ipaddress
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from dotenv import dotenv_values
from pydantic import AnyHttpUrl, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
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
    "untrusted_reason",
]

ENV_PREFIX = "GHGA_CONNECTOR_"
CONFIG_ENV_VAR = "GHGA_CONNECTOR_CONFIG_YAML"
CONFIG_FILE_NAME = ".ghga_connector.yaml"
#: The dotenv file read from the working directory.
DOTENV_FILE = ".env"
#: ``GHGA_CONNECTOR_*`` environment variables that are not settings.
OTHER_ENV_VARS = frozenset({CONFIG_ENV_VAR, "GHGA_CONNECTOR_WPAT"})


class Config(BaseSettings):
    """Settings of the connector. Field names are those of ghga-connector 4.0.1."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=None,  # ./.env is read by load_config, below an explicit YAML file
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
    allow_http_wkvs: bool = Field(
        default=False,
        description="Accept an http:// wkvs_api_url whose host is not this machine "
        "(loopback addresses, as the sandbox uses, are always accepted). Without TLS "
        "anyone on the network path could replace the Data Hub public key that uploads "
        "are encrypted to; only for test installations you trust.",
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
    min_download_rate: int = Field(
        default=64 * 1024,
        ge=1,
        description="Bytes per second a download range must at least deliver, measured "
        "over min_download_rate_window; a slower range (a trickling server, endless "
        "interim answers) is abandoned and fetched again like a timed-out one.",
    )
    min_download_rate_window: float = Field(
        default=60.0,
        gt=0,
        description="Seconds over which min_download_rate is measured: each such window "
        "must bring min_download_rate x min_download_rate_window bytes of the range (or "
        "its end).",
    )
    state_dir: Path = Field(
        default_factory=lambda: Path.home() / ".ghga_connector",
        description="Folder for the journals of unfinished uploads, their locks, and the "
        "SHA-256 of files already checked (digests/, so a re-run does not read unchanged "
        "files again). "
        "Folders the connector creates are readable by you only (0700, files 0600); the "
        "mode of an existing folder is never changed (a warning says when every user may "
        "list it). Default: .ghga_connector in your home folder. Jobs on several hosts "
        "should share it (see docs/hpc.md).",
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
        try:
            port = parts.port  # raises for a port that is not 0-65535
        except ValueError:
            port = 0
        if port == 0:
            raise ValueError("has a port that is not a number from 1 to 65535")
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
        """Precedence: arguments > environment > YAML and .env (passed as init) > defaults."""
        return (init_settings, env_settings)


def find_config_file(
    explicit: Path | None = None, warn: Callable[[str], None] | None = None
) -> Path | None:
    """The YAML configuration file to use, following the order in the module docstring.

    ``./.ghga_connector.yaml`` is skipped, with a warning to ``warn``, when
    :func:`untrusted_reason` finds it unsafe.

    Raises:
        ConfigurationError: if an explicitly named file does not exist.
    """
    return _choose_yaml(explicit, warn or _print_warning)[0]


def _choose_yaml(explicit: Path | None, warn: Callable[[str], None]) -> tuple[Path | None, bool]:
    """The YAML file to read and whether it was named explicitly (option or variable)."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigurationError(f"The configuration file {str(explicit)!r} does not exist.")
        return explicit, True
    named = os.environ.get(CONFIG_ENV_VAR)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigurationError(
                f"The configuration file {named!r} named by {CONFIG_ENV_VAR} does not exist."
            )
        return path, True
    here = Path.cwd() / CONFIG_FILE_NAME
    if here.is_file():
        reason = untrusted_reason(here)
        if reason is None:
            return here, False
        warn(_ignored(here, reason))
    home = Path.home() / CONFIG_FILE_NAME
    return (home, False) if home.is_file() else (None, False)


def untrusted_reason(path: Path) -> str | None:
    """Why a configuration file in the working directory must not be trusted, or ``None``.

    Untrusted: owned by another user than the one running the connector, or writable by
    the group or by everyone (either could redirect the connector to another server).
    """
    try:
        info = path.stat()
    except OSError:
        return None
    if info.st_uid != os.geteuid():
        return f"it is owned by another user (user id {info.st_uid})"
    if info.st_mode & 0o022:
        return f"other users may write to it (mode {info.st_mode & 0o777:04o})"
    return None


def _ignored(path: Path, reason: str) -> str:
    return (
        f"Warning: ignoring {str(path)!r}: {reason}. If it is yours and safe, run "
        f"'chmod go-w {path}'; or name a configuration file with --config."
    )


def _print_warning(line: str) -> None:
    """The default of ``warn``: one line on standard error."""
    print(line, file=sys.stderr)


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


def _nearest(name: str) -> str:
    """``"; did you mean 'x'?"`` for the setting closest to ``name``, else ``"."``."""
    nearest = difflib.get_close_matches(name, list(Config.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {ENV_PREFIX}{nearest[0].upper()}?" if nearest else "."


@dataclass(frozen=True)
class _Layers:
    """What each source of the configuration holds (setting names in lower case)."""

    yaml_path: Path | None
    yaml_explicit: bool
    yaml: dict[str, Any]
    dotenv: dict[str, Any]
    environ: frozenset[str]

    def source(self, name: str) -> str:
        """Where the effective value of setting ``name`` comes from (overrides aside)."""
        if name in self.environ:
            return "environment"
        if self.yaml_explicit and name in self.yaml:
            return str(self.yaml_path)
        if name in self.dotenv:
            return DOTENV_FILE
        if name in self.yaml:
            return str(self.yaml_path)
        return "default"

    def init_values(self) -> dict[str, Any]:
        """The YAML and .env values in their order of precedence, less what the environment sets."""
        ordered = (
            {**self.dotenv, **self.yaml} if self.yaml_explicit else {**self.yaml, **self.dotenv}
        )
        return {key: value for key, value in ordered.items() if key not in self.environ}


def _environment(warn: Callable[[str], None]) -> frozenset[str]:
    """Setting names set by ``GHGA_CONNECTOR_*`` variables; a warning for each unknown one."""
    prefix = ENV_PREFIX.lower()
    found = set()
    for key in os.environ:
        if not key.lower().startswith(prefix) or key.upper() in OTHER_ENV_VARS:
            continue
        name = key.lower().removeprefix(prefix)
        if name in Config.model_fields:
            found.add(name)
        else:
            warn(f"Warning: unknown environment variable {key} (ignored){_nearest(name)}")
    return frozenset(found)


def _dotenv(warn: Callable[[str], None]) -> dict[str, Any]:
    """The settings in ``./.env`` (decoded as pydantic-settings does), if it may be trusted.

    A file owned by another user or writable by others is ignored with a warning, and
    so is each ``GHGA_CONNECTOR_*`` key that is no setting.
    """
    path = Path(DOTENV_FILE)
    if not path.is_file():
        return {}
    reason = untrusted_reason(path)
    if reason is not None:
        warn(_ignored(path.resolve(), reason))
        return {}
    prefix = ENV_PREFIX.lower()
    for key in dotenv_values(path):
        name = key.lower().removeprefix(prefix)
        if key.lower().startswith(prefix) and name not in Config.model_fields:
            warn(f"Warning: unknown setting {key} in {DOTENV_FILE} (ignored){_nearest(name)}")
    values = DotEnvSettingsSource(Config, env_file=path)()
    return {key: value for key, value in values.items() if key in Config.model_fields}


def _gather(config_file: Path | None, warn: Callable[[str], None]) -> _Layers:
    path, explicit = _choose_yaml(config_file, warn)
    return _Layers(
        yaml_path=path,
        yaml_explicit=explicit,
        yaml=_read_yaml(path) if path else {},
        dotenv=_dotenv(warn),
        environ=_environment(warn),
    )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_wkvs_scheme(config: Config, where: str) -> None:
    """Refuse an ``http://`` WKVS URL on another host unless ``allow_http_wkvs``.

    Raises:
        ConfigurationError: naming the URL's source.
    """
    url = config.wkvs_api_url
    if url.scheme != "http" or config.allow_http_wkvs or _is_loopback(url.host or ""):
        return
    raise ConfigurationError(
        f"wkvs_api_url ({where}) is an unencrypted http:// URL on {url.host}: anyone on the "
        "network path could replace the Data Hub public key your uploads are encrypted to.",
        hint="Use its https:// URL; for a test installation you trust, set allow_http_wkvs "
        "(GHGA_CONNECTOR_ALLOW_HTTP_WKVS=true).",
    )


def load_config(
    config_file: Path | None = None,
    warn: Callable[[str], None] | None = None,
    **overrides: Any,
) -> tuple[Config, Path | None]:
    """Build the configuration and return it with the YAML file it used (if any).

    ``overrides`` (command-line values) take precedence over every other source; the
    order of the others is in the module docstring. ``warn`` receives each warning
    line (ignored files, unknown variables); by default they go to standard error.

    Raises:
        ConfigurationError: if the YAML file is missing or invalid, a value is invalid,
            or ``wkvs_api_url`` is an ``http://`` URL that is not allowed.
    """
    config, layers = _load(config_file, warn or _print_warning, overrides)
    return config, layers.yaml_path


def _load(
    config_file: Path | None, warn: Callable[[str], None], overrides: dict[str, Any]
) -> tuple[Config, _Layers]:
    layers = _gather(config_file, warn)

    def where(field: str) -> str:
        if field in overrides:
            return "command line"
        source = layers.source(field)
        if source == "environment":
            return f"environment variable {ENV_PREFIX}{field.upper()}"
        return "default" if source == "default" else source

    try:
        config = Config(**{**layers.init_values(), **overrides})
    except ValidationError as error:
        problems = []
        for err in error.errors():
            field = ".".join(str(p) for p in err["loc"])
            problems.append(f"{field} ({where(field)}): {err['msg']}")
        raise ConfigurationError(
            "Invalid configuration: " + "; ".join(problems),
            hint="Fix the value, or remove it to use the default (see docs/configuration.md).",
        ) from None
    _check_wkvs_scheme(config, where("wkvs_api_url"))
    return config, layers


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

    The sources follow the precedence of :func:`load_config` (module docstring).
    ``redact`` maps a setting name to a function that makes its (non-empty) value safe
    to print, e.g. a proxy password. Warnings go to standard error, as in :func:`load_config`.

    Raises:
        ConfigurationError: as :func:`load_config`.
    """
    config, layers = _load(config_file, _print_warning, {})
    rows = []
    for name in Config.model_fields:
        value = getattr(config, name)
        text = str(value)
        if value and redact and name in redact:
            text = redact[name](text)
        rows.append(SettingSource(name, text, layers.source(name)))
    return rows, layers.yaml_path

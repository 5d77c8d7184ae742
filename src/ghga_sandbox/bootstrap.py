"""Files a new user needs, written into the state directory at every start.

* ``.ghga_connector.yaml``: ``wkvs_api_url: http://127.0.0.1:<port>/.well-known`` only,
  the one setting ghga-connector 4.0.1 accepts there too (it refuses unknown keys);
* ``key.pub`` / ``key.sec``: a passphrase-less Crypt4GH key pair (demo only; kept if
  present), under the names both this client and 4.0.1 look for in the current folder,
  so connector commands run there need no key options;
* ``upload.wpat``: ``<wp_id>:<sealed WPAT>`` for a fresh upload work package over a
  fresh open file upload box;
* ``admin.token``: the bearer token of this run's admin API (``/admin``);
* ``sandbox.json``: ``{"url", "wkvs_api_url", "s3_url", "pid"}``, written last, so
  its presence means the other files are ready.

Secrets (``key.sec``, ``upload.wpat``, ``download.wpat``, ``admin.token``) have mode 0600.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from crypt4gh.keys import get_public_key

from ghga_sandbox.c4gh import write_user_key_files
from ghga_sandbox.runtime import Runtime
from ghga_sandbox.workpackages import WorkPackageService

__all__ = [
    "ADMIN_TOKEN",
    "CONNECTOR_YAML",
    "DOWNLOAD_WPAT",
    "SANDBOX_JSON",
    "UPLOAD_WPAT",
    "USER_PUB",
    "USER_SEC",
    "ClientFiles",
    "admin_headers",
    "read_admin_token",
    "read_user_public_key",
    "write_client_files",
    "write_secret_file",
]

CONNECTOR_YAML = ".ghga_connector.yaml"
USER_PUB = "key.pub"
USER_SEC = "key.sec"
UPLOAD_WPAT = "upload.wpat"
DOWNLOAD_WPAT = "download.wpat"
SANDBOX_JSON = "sandbox.json"
ADMIN_TOKEN = "admin.token"


@dataclass(frozen=True)
class ClientFiles:
    """Paths written by :func:`write_client_files` and the new upload box."""

    config: Path
    user_pub: Path
    user_sec: Path
    upload_wpat: Path
    sandbox_json: Path
    file_upload_box_id: str


def write_secret_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 (created or truncated)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)


def read_admin_token(state_dir: Path) -> str:
    """The admin API token of the sandbox running on ``state_dir`` (``admin.token``).

    Raises:
        OSError: no sandbox has written the token there.
    """
    return (state_dir / ADMIN_TOKEN).read_text(encoding="utf-8").strip()


def admin_headers(state_dir: Path) -> dict[str, str]:
    """Headers for the admin API of the sandbox running on ``state_dir``."""
    return {"Authorization": f"Bearer {read_admin_token(state_dir)}"}


def read_user_public_key(path: Path) -> str:
    """Standard base64 of the 32 raw bytes of a Crypt4GH public key file."""
    return base64.b64encode(get_public_key(str(path))).decode("ascii")


def write_client_files(runtime: Runtime, pid: int) -> ClientFiles:
    """Write the files of the module docstring into ``runtime.settings.state_dir``."""
    settings = runtime.settings
    directory = settings.state_dir
    directory.mkdir(parents=True, exist_ok=True)
    user_pub, user_sec = directory / USER_PUB, directory / USER_SEC
    config = directory / CONNECTOR_YAML
    config.write_text(f"wkvs_api_url: {settings.wkvs_api_url}\n", encoding="utf-8")

    if not (user_pub.exists() and user_sec.exists()):
        user_pub.unlink(missing_ok=True)
        user_sec.unlink(missing_ok=True)
        write_user_key_files(user_sec, user_pub)

    alias = next(iter(settings.storage_labels))
    box = runtime.state.create_box(alias, settings.box_max_size)
    issued = WorkPackageService(runtime).create(
        type_="upload",
        user_public_key=read_user_public_key(user_pub),
        rdub_id=box.rdub_id,
        fub_id=box.id,
    )
    upload_wpat = directory / UPLOAD_WPAT
    write_secret_file(upload_wpat, issued.access_token + "\n")

    write_secret_file(directory / ADMIN_TOKEN, settings.admin_token + "\n")

    sandbox_json = directory / SANDBOX_JSON
    info = {
        "url": settings.public_url,
        "wkvs_api_url": settings.wkvs_api_url,
        "s3_url": runtime.storage.endpoint_url,
        "pid": pid,
    }
    tmp = sandbox_json.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    tmp.replace(sandbox_json)
    return ClientFiles(
        config=config,
        user_pub=user_pub,
        user_sec=user_sec,
        upload_wpat=upload_wpat,
        sandbox_json=sandbox_json,
        file_upload_box_id=box.id,
    )

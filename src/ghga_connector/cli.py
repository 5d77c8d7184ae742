"""The ``ghga-connector`` command line: parse, build the config, call the core, map errors.

Exit codes: 0 all done (or skipped), 1 at least one file failed or a server failed,
2 usage, configuration or credential error, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from ghga_connector import package_version
from ghga_connector.c4gh.keys import (
    KeyPair,
    default_key_paths,
    load_key_pair,
    load_private_key,
    private_key_is_exposed,
)
from ghga_connector.cli_help import GlobalOptionsGroup
from ghga_connector.config import CONFIG_FILE_NAME, Config, find_config_file, load_config
from ghga_connector.core.decrypt import decrypt_file
from ghga_connector.core.journal import JournalStore
from ghga_connector.core.planning import encrypted_size
from ghga_connector.core.ports import ProgressReporter
from ghga_connector.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ConnectorError,
    InputFileError,
    OutputError,
    PassphraseError,
    ServiceUnreachableError,
    UserInputError,
)
from ghga_connector.inject import Session, open_session
from ghga_connector.manifest import load_manifest, plan_uploads
from ghga_connector.models import FileOutcome, FileUploadState, Outcome
from ghga_connector.prompts import (
    passphrase_source,
    prompts_interactively,
    read_wpat,
    token_file_is_exposed,
)
from ghga_connector.reporting.console import (
    JsonReporter,
    PlainReporter,
    QuietReporter,
    RichReporter,
    clean_text,
    outcome_json,
    plain,
    print_table,
)

__all__ = ["app", "run"]

#: Tries for a passphrase typed at the prompt.
PASSPHRASE_ATTEMPTS = 3

T = TypeVar("T")

# crypt4gh logs failed header decryptions itself ("X25519 Packet Decryption failed");
# the connector reports them as its own errors. With --debug they reach the root log.
logging.getLogger("crypt4gh").addHandler(logging.NullHandler())

app = typer.Typer(
    name="ghga-connector",
    help=(
        "Upload files to and download files from GHGA, the German Human Genome-Phenome "
        "Archive. Files are Crypt4GH-encrypted on your machine before upload and checked "
        "after download.\n\n"
        "Typical use:\n\n"
        "  ghga-connector upload --wpat-file upload.wpat sample1.bam sample2.bam\n\n"
        "  ghga-connector download --wpat-file download.wpat --output-dir data --decrypt\n\n"
        "--json, --quiet, --debug and --config may also follow the command (ghga-connector ls --json)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    cls=GlobalOptionsGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class GlobalOptions:
    """Options given before the command."""

    debug: bool = False
    json: bool = False
    quiet: bool = False
    config_file: Path | None = None
    #: Which configuration is in force, once loaded (for messages).
    config_origin: str | None = None


# --- shared options -----------------------------------------------------------------

PublicKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--my-public-key-path",
        metavar="PATH",
        help="Your Crypt4GH public key file (the one registered with GHGA). If not given: "
        "the my_public_key_path setting (.ghga_connector.yaml or "
        "GHGA_CONNECTOR_MY_PUBLIC_KEY_PATH), else ~/.c4gh/key.pub, else ./key.pub.",
    ),
]
PrivateKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--my-private-key-path",
        metavar="PATH",
        help="Your Crypt4GH private key file; its passphrase is asked for hidden, or "
        "taken from C4GH_PASSPHRASE. If not given: the my_private_key_path setting "
        "(.ghga_connector.yaml or GHGA_CONNECTOR_MY_PRIVATE_KEY_PATH), else ~/.c4gh/key, "
        "else ./key.sec.",
    ),
]
WpatFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--wpat-file",
        metavar="PATH",
        help="File holding the work package access token from the GHGA Data Portal "
        "('-': read it from standard input). Alternatives: env GHGA_CONNECTOR_WPAT, a "
        "token piped on standard input, or a hidden prompt.",
    ),
]
WpatOpt = Annotated[
    str | None,
    typer.Option(
        "--wpat",
        help="The access token itself (discouraged: visible to other users in the process list).",
        hidden=False,
    ),
]
DebugOpt = Annotated[
    bool, typer.Option("--debug", help="Show tracebacks and request details on errors.")
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ghga-connector {package_version()}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def main(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
    debug: DebugOpt = False,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="Write one JSON object per file to standard output."),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Show errors only.")] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="YAML configuration file (default: $GHGA_CONNECTOR_CONFIG_YAML, "
            "./.ghga_connector.yaml, ~/.ghga_connector.yaml).",
        ),
    ] = None,
) -> None:
    """Global options."""
    ctx.obj = GlobalOptions(debug=debug, json=json_output, quiet=quiet, config_file=config)


# --- plumbing -----------------------------------------------------------------------


def _options(ctx: typer.Context, debug: bool = False) -> GlobalOptions:
    options = ctx.obj if isinstance(ctx.obj, GlobalOptions) else GlobalOptions()
    if debug:
        options.debug = True
    if options.debug:
        # Request log on standard error: method, host and path, status, time; no query
        # strings, no headers (adapters/http.py LoggingTransport).
        logging.basicConfig(
            level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
        )
        logging.getLogger("ghga_connector").setLevel(logging.DEBUG)
    return options


def _err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _reporter(options: GlobalOptions) -> ProgressReporter:
    console = _err_console()
    if options.json:
        return JsonReporter(console)
    if options.quiet:
        return QuietReporter(console)
    if console.is_terminal:
        return RichReporter(console)
    return PlainReporter(console)


def _fail(options: GlobalOptions, error: BaseException, code: int) -> typer.Exit:
    console = _err_console()
    if options.debug:
        console.print("".join(traceback.format_exception(error)), markup=False)
    if isinstance(error, ConnectorError):
        console.print(plain("Error: ", "bold red") + plain(error.message), highlight=False)
        if error.hint:
            console.print(plain(f"  {error.hint}"), highlight=False)
        if isinstance(error, ServiceUnreachableError) and options.config_origin:
            console.print(plain(f"  Configuration: {options.config_origin}."), highlight=False)
    else:
        text = plain(f"{type(error).__name__}: {error}")
        console.print(plain("Error: ", "bold red") + text, highlight=False)
        if not options.debug:
            console.print("  Rerun with --debug for details.", highlight=False)
    return typer.Exit(code)


def _execute(options: GlobalOptions, work: Callable[[], T]) -> T:
    """Run ``work``, turning errors into messages and exit codes."""
    try:
        return work()
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        _err_console().print("[yellow]Interrupted.[/]")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except ConnectorError as error:
        raise _fail(options, error, error.exit_code) from None
    except Exception as error:
        raise _fail(options, error, EXIT_FAILURE) from None


def _run_async(reporter: ProgressReporter, coroutine: Awaitable[T]) -> T:
    async def wrapped() -> T:
        return await coroutine

    if isinstance(reporter, RichReporter):
        with reporter:
            return asyncio.run(wrapped())
    return asyncio.run(wrapped())


def _load_keys(public: Path, private: Path, reporter: ProgressReporter) -> KeyPair:
    """Load the key pair; a passphrase typed at the prompt may be retried three times."""
    for attempt in range(1, PASSPHRASE_ATTEMPTS + 1):
        try:
            keys = load_key_pair(public, private, passphrase_source(private))
            break
        except PassphraseError as error:
            if attempt == PASSPHRASE_ATTEMPTS or not prompts_interactively():
                raise
            reporter.message(f"{error.message} Try again.", level="warning")
    if private_key_is_exposed(private):
        reporter.message(
            f"Warning: the private key {str(private)!r} is readable by other users; "
            f"restrict it with 'chmod 600 {private}'.",
            level="warning",
        )
    return keys


class _WarningsReporter(QuietReporter):
    """Errors and warnings only: for commands that transfer nothing (ls, delete)."""

    def message(self, text: str, *, level: str = "info") -> None:
        """Warnings and errors on standard error."""
        if level != "info":
            self.console.print(text, highlight=False, markup=False)


def _listing_reporter(options: GlobalOptions) -> ProgressReporter:
    console = _err_console()
    return QuietReporter(console) if options.quiet else _WarningsReporter(console)


def _ignore(_: str) -> None:
    """Discard a message (used where the CLI already said it)."""


def _warn_if_token_on_argv(wpat: str | None, reporter: ProgressReporter) -> None:
    """Warn first thing that a token on the command line is visible to other users."""
    if wpat:
        reporter.message(
            "Warning: passing the access token with --wpat makes it visible to other users "
            "of this machine; prefer --wpat-file or GHGA_CONNECTOR_WPAT.",
            level="warning",
        )


def _summary(
    options: GlobalOptions,
    outcomes: list[FileOutcome],
    verb: str,
    session: Session | None = None,
    *,
    allow_unverified: bool = False,
) -> int:
    """Print the final table; return the exit code.

    1 if any file failed, or was written ``unverified`` (no checksum to compare with)
    and ``allow_unverified`` is not set; else 0.
    """
    failed = [o for o in outcomes if o.outcome is Outcome.FAILED]
    unverified = [o for o in outcomes if o.outcome is Outcome.UNVERIFIED]
    if options.json:
        # a dry run's plan: its rows were not reported as finished files
        for o in outcomes:
            if o.outcome is Outcome.PLANNED:
                sys.stdout.write(json.dumps(outcome_json(o)) + "\n")
    if not options.json and not options.quiet:
        table = Table(title=f"{verb} summary", title_justify="left")
        for column in ("file", "result", "size (bytes)", "MB/s", "note"):
            table.add_column(column, overflow="fold")
        for o in outcomes:
            style = {"done": "green", "failed": "red", "skipped": "yellow"}.get(o.outcome.value, "")
            if o.outcome is Outcome.UNVERIFIED:
                style = "yellow"
            table.add_row(
                plain(o.name),
                plain(o.outcome.value, style),
                f"{o.size:,}",
                f"{o.throughput / 1e6:.1f}" if o.throughput else "",
                plain(o.message),
            )
        print_table(table, stderr=True)
        console = _err_console()
        if session is not None and session.retry_stats.total:
            reasons = ", ".join(
                f"{k} ×{v}" for k, v in sorted(session.retry_stats.by_reason.items())
            )
            console.print(f"Retried requests: {session.retry_stats.total} ({reasons})")
    if failed:
        if not options.json:
            _err_console().print(
                f"[bold red]{len(failed)} of {len(outcomes)} file(s) failed.[/]", highlight=False
            )
        return EXIT_FAILURE
    if unverified and not allow_unverified:
        _err_console().print(
            plain(
                f"{len(unverified)} of {len(outcomes)} file(s) could not be verified against a "
                "checksum; pass --allow-unverified to accept them.",
                "bold yellow",
            ),
            highlight=False,
        )
        return EXIT_FAILURE
    return EXIT_OK


AllowUnverifiedOpt = Annotated[
    bool,
    typer.Option(
        "--allow-unverified",
        help="Exit 0 even if a file could not be verified because no checksum was available "
        "(it is still reported as 'unverified').",
    ),
]


def _config_origin(config: Config, path: Path | None) -> str:
    """Which configuration is in force, in words (no secrets: settings hold none)."""
    url = str(config.wkvs_api_url)
    if path is not None:
        return f"{path} (wkvs_api_url {url})"
    default = str(Config.model_fields["wkvs_api_url"].default)
    where = f"no {CONFIG_FILE_NAME} here or in ~/"
    if url == default:
        return f"{where}; using GHGA production ({url})"
    return f"{where}; wkvs_api_url {url} from the environment"


def _config(options: GlobalOptions) -> Config:
    config, path = load_config(options.config_file)
    options.config_origin = _config_origin(config, path)
    if options.debug:
        _err_console().print(f"Configuration: {options.config_origin}", markup=False)
    return config


def _key_paths(config: Config, public: Path | None, private: Path | None) -> tuple[Path, Path]:
    """The key files: the options, else the settings, else :func:`default_key_paths`."""
    public = public or config.my_public_key_path
    private = private or config.my_private_key_path
    if public is None or private is None:
        default_public, default_private = default_key_paths()
        public = public or default_public
        private = private or default_private
    return public.expanduser(), private.expanduser()


@dataclass(frozen=True)
class Credentials:
    """Where the access token and the key pair come from (paths and options, no secrets)."""

    wpat_file: Path | None
    wpat: str | None
    public_key: Path | None
    private_key: Path | None

    def load(self, reporter: ProgressReporter, config: Config) -> tuple[KeyPair, str]:
        """The key pair and the WPAT text; warns first about a token on the command line.

        Raises:
            TokenError: both --wpat and --wpat-file, or no usable token.
            KeyFileError, PassphraseError: the key pair cannot be loaded.
        """
        if self.wpat_file is not None and self.wpat:
            raise UserInputError(
                "Give the access token either with --wpat-file or with --wpat, not both."
            )
        _warn_if_token_on_argv(self.wpat, reporter)
        public, private = _key_paths(config, self.public_key, self.private_key)
        keys = _load_keys(public, private, reporter)
        token = read_wpat(self.wpat_file, self.wpat, _ignore)
        if self.wpat_file is not None and token_file_is_exposed(self.wpat_file):
            reporter.message(
                f"Warning: the token file {str(self.wpat_file)!r} is readable by other users; "
                f"restrict it with 'chmod 600 {self.wpat_file}'.",
                level="warning",
            )
        return keys, token


# --- commands -----------------------------------------------------------------------


def _upload(
    options: GlobalOptions,
    entries: list[tuple[Path, str]],
    credentials: Credentials,
    *,
    overwrite: bool,
    dry_run: bool,
    restart: bool = False,
) -> None:
    def work() -> int:
        config = _config(options)
        jobs = [replace(j, restart=restart) for j in plan_uploads(entries, overwrite=overwrite)]
        reporter = _reporter(options)
        keys, token = credentials.load(reporter, config)

        async def go() -> tuple[list[FileOutcome], Session]:
            async with open_session(config, keys, token, reporter) as session:
                return await session.handler.upload(jobs, dry_run=dry_run), session

        outcomes, session = _run_async(reporter, go())
        return _summary(options, outcomes, "Dry run" if dry_run else "Upload", session)

    raise typer.Exit(_execute(options, work))


@app.command(
    "upload",
    epilog="Examples:\n\n"
    "  ghga-connector upload --wpat-file upload.wpat sample1.bam sample2.vcf.gz\n\n"
    "  ghga-connector upload --wpat-file upload.wpat --alias tumor.bam /data/x.bam\n\n"
    "  ghga-connector upload --wpat-file upload.wpat --manifest files.tsv --dry-run",
)
def upload(
    ctx: typer.Context,
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="FILE...", help="Files to upload; each keeps its file name as alias."
        ),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            "--tsv",
            metavar="TSV",
            help="TSV file of 'path<TAB>alias' lines (a 'path<TAB>alias' header line is skipped).",
        ),
    ] = None,
    alias: Annotated[
        str | None,
        typer.Option(
            "--alias", metavar="ALIAS", help="Alias for a single FILE (default: its name)."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace files already in the upload box.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Check token, box, keys and files; print the plan; send nothing."
        ),
    ] = False,
    restart: Annotated[
        bool,
        typer.Option(
            "--restart",
            help="Start interrupted uploads from the beginning instead of continuing them.",
        ),
    ] = False,
    wpat_file: WpatFileOpt = None,
    wpat: WpatOpt = None,
    my_public_key_path: PublicKeyOpt = None,
    my_private_key_path: PrivateKeyOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Encrypt files with Crypt4GH and upload them into your GHGA upload box.

    Files are encrypted while they are read (no encrypted copy on disk) and sent in
    parallel parts. Files already in the box are skipped unless --overwrite.
    """
    options = _options(ctx, debug)

    def entries() -> list[tuple[Path, str]]:
        if manifest is not None and files:
            raise UserInputError("Give either FILE arguments or --manifest, not both.")
        if manifest is not None:
            return load_manifest(manifest)
        if not files:
            raise UserInputError(
                "No files given.", hint="Name files to upload, or a --manifest TSV file."
            )
        if alias is not None and len(files) != 1:
            raise UserInputError("--alias needs exactly one FILE.")
        return [(f, alias if alias is not None else f.name) for f in files]

    listed = _execute(options, entries)
    credentials = Credentials(wpat_file, wpat, my_public_key_path, my_private_key_path)
    _upload(options, listed, credentials, overwrite=overwrite, dry_run=dry_run, restart=restart)


@app.command(
    "batch-upload", help="Upload the files listed in a TSV file (ghga-connector 4.x style)."
)
def batch_upload(
    ctx: typer.Context,
    tsv: Annotated[Path, typer.Option("--tsv", help="TSV file of 'path<TAB>alias' lines.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing files.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")] = False,
    max_retries: Annotated[
        int,
        typer.Option(
            "--max-retries", help="Accepted for compatibility; parts are retried individually."
        ),
    ] = 3,
    shorten_names: Annotated[
        bool, typer.Option("--shorten-names", help="Accepted for compatibility; no effect.")
    ] = False,
    wpat_file: WpatFileOpt = None,
    wpat: WpatOpt = None,
    my_public_key_path: PublicKeyOpt = None,
    my_private_key_path: PrivateKeyOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Upload the files listed in a TSV file."""
    options = _options(ctx, debug)
    listed = _execute(options, lambda: load_manifest(tsv))
    credentials = Credentials(wpat_file, wpat, my_public_key_path, my_private_key_path)
    _upload(options, listed, credentials, overwrite=overwrite, dry_run=dry_run)


@app.command(
    "download",
    epilog="Examples:\n\n"
    "  ghga-connector download --wpat-file download.wpat --output-dir data\n\n"
    "  ghga-connector download --wpat-file download.wpat --output-dir data --decrypt\n\n"
    "  ghga-connector download --wpat-file download.wpat --output-dir data --file GHGAF00000000000001",
)
def download(
    ctx: typer.Context,
    output_dir: Annotated[
        Path, typer.Option("--output-dir", help="Existing folder to write the files into.")
    ],
    file: Annotated[
        list[str] | None,
        typer.Option(
            "--file",
            metavar="ACCESSION",
            help="Download only this file: its accession (GHGAF…) as listed by "
            "'ghga-connector ls' with the download token (repeatable).",
        ),
    ] = None,
    decrypt: Annotated[
        bool,
        typer.Option(
            "--decrypt",
            help="Decrypt while downloading: write the plaintext, keep no encrypted copy.",
        ),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace files that exist in the output folder.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be downloaded; send nothing else.")
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Check files that are already there (checksum; every Crypt4GH segment) "
            "and download damaged ones again.",
        ),
    ] = False,
    allow_unverified: AllowUnverifiedOpt = False,
    wpat_file: WpatFileOpt = None,
    wpat: WpatOpt = None,
    my_public_key_path: PublicKeyOpt = None,
    my_private_key_path: PrivateKeyOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Download the files of a download work package.

    Waits while files are staged, fetches parallel ranges, authenticates every Crypt4GH
    segment and compares the SHA-256 with GHGA's checksum before a file gets its final
    name. Without --decrypt, files stay encrypted as <accession><ext>.c4gh with the
    plaintext checksum beside them as <accession><ext>.sha256 for 'ghga-connector
    decrypt'. A file GHGA has no checksum for is reported 'unverified' (exit 1 unless
    --allow-unverified).
    """
    options = _options(ctx, debug)

    def work() -> int:
        config = _config(options)
        if not output_dir.is_dir():
            raise OutputError(
                f"The output folder {str(output_dir)!r} does not exist.",
                hint=f"Create it first: mkdir {output_dir}",
            )
        reporter = _reporter(options)
        credentials = Credentials(wpat_file, wpat, my_public_key_path, my_private_key_path)
        keys, token = credentials.load(reporter, config)

        async def go() -> tuple[list[FileOutcome], Session]:
            async with open_session(config, keys, token, reporter) as session:
                jobs = await session.handler.download_plan(
                    output_dir, accessions=file, decrypt=decrypt
                )
                outcomes = await session.handler.download(
                    jobs, overwrite=overwrite, dry_run=dry_run, verify=verify
                )
                return outcomes, session

        outcomes, session = _run_async(reporter, go())
        return _summary(
            options,
            outcomes,
            "Dry run" if dry_run else "Download",
            session,
            allow_unverified=allow_unverified,
        )

    raise typer.Exit(_execute(options, work))


@app.command(
    "decrypt",
    epilog="Example:\n\n  ghga-connector decrypt --input-dir data --my-private-key-path key.sec",
)
def decrypt(
    ctx: typer.Context,
    input_dir: Annotated[Path, typer.Option("--input-dir", help="Folder with .c4gh files.")],
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            help="Existing folder for the decrypted files (default: the input folder).",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace existing outputs.")
    ] = False,
    allow_unverified: AllowUnverifiedOpt = False,
    my_private_key_path: PrivateKeyOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Decrypt downloaded .c4gh files and verify them against GHGA's checksum.

    The checksum is read from X.bam.sha256 (or X.bam.c4gh.sha256, from older versions)
    beside X.bam.c4gh. A file whose content fails authentication or its checksum leaves
    no output behind; a file without a checksum file is decrypted but reported
    'unverified' (exit 1 unless --allow-unverified).
    """
    options = _options(ctx, debug)

    def work() -> int:
        target_dir = output_dir if output_dir is not None else input_dir
        if not input_dir.is_dir():
            raise InputFileError(f"The input folder {str(input_dir)!r} does not exist.")
        if not target_dir.is_dir():
            raise OutputError(
                f"The output folder {str(target_dir)!r} does not exist.",
                hint=f"Create it first: mkdir {target_dir}",
            )
        sources = sorted(p for p in input_dir.glob("*.c4gh") if p.is_file())
        if not sources:
            raise InputFileError(f"There are no .c4gh files in {str(input_dir)!r}.")
        config = _config(options)
        reporter = _reporter(options)
        # only the private key is needed ("-" stands in for the public one)
        _, private = _key_paths(config, Path("-"), my_private_key_path)
        secret = load_private_key(private, passphrase_source(private))
        outcomes = []
        for source in sources:
            target = target_dir / source.name.removesuffix(".c4gh")
            try:
                outcome = decrypt_file(source, target, secret, overwrite=overwrite)
            except ConnectorError as error:
                outcome = FileOutcome(
                    name=source.name,
                    outcome=Outcome.FAILED,
                    path=target,
                    message=error.message,
                )
            reporter.file_finished(outcome)
            outcomes.append(outcome)
        return _summary(options, outcomes, "Decrypt", allow_unverified=allow_unverified)

    raise typer.Exit(_execute(options, work))


def _ls_cell(row: dict[str, Any], key: str) -> str:
    """One cell of the ``ls`` table (``--json`` keeps the raw values)."""
    value = row[key]
    if key == "staged" and isinstance(value, bool):
        return "yes" if value else "no (being staged)"
    if value is None:
        return "known once staged" if key == "size" and row.get("staged") is False else ""
    return f"{value:,}" if isinstance(value, int) else str(value)


@app.command("ls", epilog="Example:\n\n  ghga-connector ls --wpat-file upload.wpat")
def list_files(
    ctx: typer.Context,
    show_all: Annotated[
        bool,
        typer.Option("--all", help="Also list removed (cancelled) uploads of the upload box."),
    ] = False,
    wpat_file: WpatFileOpt = None,
    wpat: WpatOpt = None,
    my_public_key_path: PublicKeyOpt = None,
    my_private_key_path: PrivateKeyOpt = None,
    debug: DebugOpt = False,
) -> None:
    """List the files of a work package: uploads in the box, or files you may download."""
    options = _options(ctx, debug)

    def work() -> int:
        config = _config(options)
        reporter = _listing_reporter(options)
        credentials = Credentials(wpat_file, wpat, my_public_key_path, my_private_key_path)
        keys, token = credentials.load(reporter, config)

        async def go() -> list[dict[str, Any]]:
            async with open_session(config, keys, token, reporter) as session:
                package = await session.accessor.get_work_package()
                if package.type == "upload":
                    return [
                        {
                            "alias": item.alias,
                            "state": item.state.value,
                            "size": item.decrypted_size,
                            "file_id": item.id,
                        }
                        for item in sorted(
                            await session.handler.list_uploads(), key=lambda i: i.alias
                        )
                        if show_all or item.state is not FileUploadState.CANCELLED
                    ]
                return await session.handler.download_listing()

        rows = asyncio.run(go())
        if options.json:
            for row in rows:
                sys.stdout.write(json.dumps(row) + "\n")
            return EXIT_OK
        table = Table()
        if rows:
            for column in rows[0]:
                table.add_column(column)
            for row in rows:
                table.add_row(*(plain(_ls_cell(row, key)) for key in row))
            print_table(table)
        else:
            Console().print("No files.")
        return EXIT_OK

    raise typer.Exit(_execute(options, work))


@app.command(
    "delete",
    epilog="Example:\n\n  ghga-connector delete --wpat-file upload.wpat --alias sample1.bam",
)
def delete(
    ctx: typer.Context,
    alias: Annotated[
        str | None, typer.Option("--alias", help="Alias of the upload to remove.")
    ] = None,
    file_id: Annotated[
        str | None, typer.Option("--file-id", help="File id of the upload to remove.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    wpat_file: WpatFileOpt = None,
    wpat: WpatOpt = None,
    my_public_key_path: PublicKeyOpt = None,
    my_private_key_path: PrivateKeyOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Remove a file, or cancel an unfinished upload, in your upload box."""
    options = _options(ctx, debug)

    def work() -> int:
        if (alias is None) == (file_id is None):
            raise UserInputError("Give exactly one of --alias or --file-id.")
        config = _config(options)
        reporter = _listing_reporter(options)
        credentials = Credentials(wpat_file, wpat, my_public_key_path, my_private_key_path)
        keys, token = credentials.load(reporter, config)

        async def go() -> str:
            async with open_session(config, keys, token, reporter) as session:
                items = [i for i in await session.handler.list_uploads() if not i.state.is_absent]
                match = [i for i in items if i.alias == alias or i.id == file_id]
                if not match:
                    raise UserInputError(
                        f"No upload {alias or file_id!r} in the upload box.",
                        hint="Run 'ghga-connector ls' to see the uploads.",
                    )
                item = match[0]
                if not yes:
                    if not sys.stdin.isatty():
                        raise UserInputError("Refusing to delete without confirmation; pass --yes.")
                    if not typer.confirm(
                        f"Remove {clean_text(item.alias)} ({item.state.value}) from the upload box?"
                    ):
                        return "kept"
                await session.handler.delete_upload(item.id)
                JournalStore(config.state_dir).remove(
                    session.accessor.file_upload_box_id, item.alias
                )
                return f"removed {item.alias}"

        result = asyncio.run(go())
        _err_console().print(plain(result), highlight=False)
        return EXIT_OK

    raise typer.Exit(_execute(options, work))


@app.command("status")
def status(ctx: typer.Context) -> None:
    """List unfinished uploads that the next 'upload' of the same file will continue."""
    options = _options(ctx)

    def work() -> int:
        config = _config(options)
        journals = JournalStore(config.state_dir).all()
        rows = [
            {
                "alias": j.alias,
                "path": j.path,
                "bytes": j.size,
                "parts_stored": len(j.parts),
                "parts_total": -(-encrypted_size(j.size) // j.part_size),
                "file_id": j.file_id,
            }
            for j in journals
        ]
        if options.json:
            for row in rows:
                sys.stdout.write(json.dumps(row) + "\n")
            return EXIT_OK
        if not rows:
            Console().print("No unfinished uploads.")
            return EXIT_OK
        table = Table(title="Unfinished uploads", title_justify="left")
        for column in rows[0]:
            table.add_column(column)
        for row in rows:
            table.add_row(*(plain(str(v)) for v in row.values()))
        print_table(table)
        return EXIT_OK

    raise typer.Exit(_execute(options, work))


@app.command("config")
def show_config(ctx: typer.Context) -> None:
    """Show the effective configuration and where each value comes from."""
    options = _options(ctx)

    def work() -> int:
        import os

        from ghga_connector.config import ENV_PREFIX

        path = find_config_file(options.config_file)
        config, _ = load_config(options.config_file)
        file_keys: set[str] = set()
        if path is not None:
            import yaml

            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            file_keys = {str(k).lower() for k in loaded}
        env_keys = {
            k.lower().removeprefix(ENV_PREFIX.lower())
            for k in os.environ
            if k.upper().startswith(ENV_PREFIX)
        }
        rows = []
        for name in Config.model_fields:
            value = getattr(config, name)
            source = (
                "environment"
                if name in env_keys
                else (str(path) if name in file_keys else "default")
            )
            rows.append({"setting": name, "value": str(value), "source": source})
        if options.json:
            for row in rows:
                sys.stdout.write(json.dumps(row) + "\n")
            return EXIT_OK
        table = Table(title=f"Configuration file: {path or 'none'}", title_justify="left")
        for column in ("setting", "value", "source"):
            table.add_column(column)
        for row in rows:
            table.add_row(plain(row["setting"]), plain(row["value"]), plain(row["source"]))
        print_table(table)
        return EXIT_OK

    raise typer.Exit(_execute(options, work))


def run() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - Ctrl-C during argument parsing
        sys.exit(EXIT_INTERRUPTED)

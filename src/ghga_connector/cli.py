"""The ``ghga-connector`` command line: parse, call the handler, render through reporting/.

Options and the checks of their combinations live in :mod:`ghga_connector.cli_options`;
what every command does before and around the handler (configuration, reporter,
credentials, session, exit codes) in :mod:`ghga_connector.cli_session`; tables and JSON
lines in :mod:`ghga_connector.reporting`.

Exit codes: 0 all done (or skipped), 1 at least one file failed or a server failed,
2 usage, configuration or credential error, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import logging
import signal
import sys
from dataclasses import asdict, replace

import typer

from ghga_connector import _startup  # noqa: F401  - first: keeps httpx's own CLI unloaded
from ghga_connector import cli_options as opt
from ghga_connector.cli_help import GlobalOptionsGroup
from ghga_connector.cli_options import GlobalOptions
from ghga_connector.cli_session import (
    Credentials,
    closed_stdout,
    config_origin,
    confirm_deletion,
    execute,
    fail,
    global_options,
    listing_reporter,
    load_run_config,
    load_secret_key,
    make_reporter,
    print_rows,
    summary,
    take_share,
)
from ghga_connector.config import describe_sources
from ghga_connector.core.browse import unfinished_uploads
from ghga_connector.core.decrypt import decrypt_batch, decrypt_sources
from ghga_connector.errors import EXIT_INTERRUPTED, EXIT_OK, Terminated, UserInputError
from ghga_connector.inject import Session, safe_proxy_url
from ghga_connector.manifest import plan_uploads
from ghga_connector.models import FileOutcome
from ghga_connector.reporting import tables
from ghga_connector.reporting.console import clean_text
from ghga_connector.reporting.errors import print_note

__all__ = ["app", "run"]

# crypt4gh logs failed header decryptions itself ("X25519 Packet Decryption failed");
# the connector reports them as its own errors. With --debug they reach the root log.
logging.getLogger("crypt4gh").addHandler(logging.NullHandler())

app = typer.Typer(
    name="ghga-connector",
    help=opt.APP_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    cls=GlobalOptionsGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def main(
    ctx: typer.Context,
    version: opt.VersionOpt = False,
    debug: opt.DebugOpt = False,
    json_output: opt.JsonOpt = False,
    quiet: opt.QuietOpt = False,
    config: opt.ConfigFileOpt = None,
) -> None:
    """Global options."""
    ctx.obj = GlobalOptions(debug=debug, json=json_output, quiet=quiet, config_file=config)


# --- commands -----------------------------------------------------------------------


@app.command("upload", epilog=opt.UPLOAD_EXAMPLES)
def upload(
    ctx: typer.Context,
    files: opt.UploadFilesArg = None,
    manifest: opt.ManifestOpt = None,
    alias: opt.UploadAliasOpt = None,
    overwrite: opt.UploadOverwriteOpt = False,
    dry_run: opt.UploadDryRunOpt = False,
    restart: opt.RestartOpt = False,
    wait: opt.WaitOpt = False,
    shard: opt.ShardOpt = None,
    parallel_files: opt.ParallelFilesOpt = None,
    parts_in_flight: opt.PartsInFlightOpt = None,
    wpat_file: opt.WpatFileOpt = None,
    wpat: opt.WpatOpt = None,
    my_public_key_path: opt.PublicKeyOpt = None,
    my_private_key_path: opt.PrivateKeyOpt = None,
    debug: opt.DebugOpt = False,
) -> None:
    """Encrypt files with Crypt4GH and upload them into your GHGA upload box.

    Files are encrypted while they are read (no encrypted copy on disk) and sent in
    parallel parts. Files already in the box are skipped unless --overwrite.
    """
    options = global_options(ctx, debug)
    entries = execute(options, lambda: opt.upload_entries(files, manifest, alias))
    credentials = Credentials(wpat_file, wpat, my_public_key_path, my_private_key_path)

    def work() -> int:
        config = load_run_config(
            options, opt.concurrency("upload", parallel_files, parts_in_flight)
        )
        jobs = [replace(j, restart=restart) for j in plan_uploads(entries, overwrite=overwrite)]
        reporter = make_reporter(options)
        if shard is not None:
            jobs = take_share(jobs, shard, reporter, size=lambda j: j.size, name=lambda j: j.alias)
        run = credentials.start(config, reporter)
        outcomes, session = run.run(lambda s: s.handler.upload(jobs, dry_run=dry_run, wait=wait))
        return summary(options, outcomes, "Dry run" if dry_run else "Upload", session)

    raise typer.Exit(execute(options, work))


@app.command(
    "batch-upload",
    help="Upload the files listed in a TSV file (ghga-connector 4.x style).",
    epilog=opt.BATCH_UPLOAD_EXAMPLE,
)
def batch_upload(
    ctx: typer.Context,
    tsv: opt.BatchTsvOpt,
    overwrite: opt.BatchOverwriteOpt = False,
    dry_run: opt.BatchDryRunOpt = False,
    max_retries: opt.MaxRetriesOpt = 3,
    shorten_names: opt.ShortenNamesOpt = False,
    wpat_file: opt.WpatFileOpt = None,
    wpat: opt.WpatOpt = None,
    my_public_key_path: opt.PublicKeyOpt = None,
    my_private_key_path: opt.PrivateKeyOpt = None,
    debug: opt.DebugOpt = False,
) -> None:
    """Upload the files listed in a TSV file."""
    upload(
        ctx,
        manifest=tsv,
        overwrite=overwrite,
        dry_run=dry_run,
        wpat_file=wpat_file,
        wpat=wpat,
        my_public_key_path=my_public_key_path,
        my_private_key_path=my_private_key_path,
        debug=debug,
    )


@app.command("download", epilog=opt.DOWNLOAD_EXAMPLES)
def download(
    ctx: typer.Context,
    output_dir: opt.OutputDirOpt = None,
    output: opt.StdoutOpt = None,
    file: opt.AccessionsOpt = None,
    decrypt: opt.DecryptOpt = False,
    overwrite: opt.DownloadOverwriteOpt = False,
    dry_run: opt.DownloadDryRunOpt = False,
    verify: opt.VerifyOpt = False,
    allow_unverified: opt.AllowUnverifiedOpt = False,
    wait: opt.WaitOpt = False,
    shard: opt.ShardOpt = None,
    parallel_files: opt.ParallelFilesOpt = None,
    parts_in_flight: opt.PartsInFlightOpt = None,
    wpat_file: opt.WpatFileOpt = None,
    wpat: opt.WpatOpt = None,
    my_public_key_path: opt.PublicKeyOpt = None,
    my_private_key_path: opt.PrivateKeyOpt = None,
    debug: opt.DebugOpt = False,
) -> None:
    """Download the files of a download work package.

    Waits while files are staged, fetches parallel ranges, authenticates every Crypt4GH
    segment and compares the SHA-256 with GHGA's checksum before a file gets its final
    name. Without --decrypt, files stay encrypted as <accession><ext>.c4gh with the
    plaintext checksum beside them as <accession><ext>.sha256 for 'ghga-connector
    decrypt'. A file GHGA has no checksum for is reported 'unverified' (exit 1 unless
    --allow-unverified).
    """
    options = global_options(ctx, debug)
    credentials = Credentials(wpat_file, wpat, my_public_key_path, my_private_key_path)
    given = opt.concurrency("download", parallel_files, parts_in_flight)

    def stream(output: str, accessions: list[str]) -> int:  # --output -: plaintext to stdout
        given = {"--json": options.json, "--output-dir": output_dir is not None}
        given |= {"--shard": shard is not None, "--dry-run": dry_run, "--verify": verify}
        clashing = [name for name, on in (given | {"--overwrite": overwrite}).items() if on]
        opt.check_stdout_request(output, accessions, decrypt=decrypt, clashing=clashing)
        run = credentials.start(load_run_config(options, given), make_reporter(options))
        outcome, session = run.run(lambda s: s.handler.stream(accessions[0], sys.stdout.buffer))
        return summary(options, [outcome], "Stream", session, allow_unverified=allow_unverified)

    if output is not None:
        raise typer.Exit(execute(options, lambda: stream(output, file or [])))
    folder = execute(options, lambda: opt.require_output_dir(output_dir))

    def work() -> int:
        config = load_run_config(options, given)
        opt.check_output_folder(folder, create=not dry_run)
        run = credentials.start(config, make_reporter(options))

        async def go(session: Session) -> list[FileOutcome]:
            jobs = await session.handler.download_plan(folder, accessions=file, decrypt=decrypt)
            if shard is not None:  # sizes are known only once files are staged: by count
                jobs = take_share(jobs, shard, run.reporter, size=None, name=lambda j: j.accession)
            return await session.handler.download(
                jobs,
                overwrite=overwrite,
                dry_run=dry_run,
                verify=verify,
                allow_unverified=allow_unverified,
                wait=wait,
            )

        outcomes, session = run.run(go)
        verb = "Dry run" if dry_run else "Download"
        return summary(options, outcomes, verb, session, allow_unverified=allow_unverified)

    raise typer.Exit(execute(options, work))


@app.command("decrypt", epilog=opt.DECRYPT_EXAMPLE)
def decrypt(
    ctx: typer.Context,
    input_dir: opt.InputDirOpt,
    output_dir: opt.DecryptOutputDirOpt = None,
    overwrite: opt.DecryptOverwriteOpt = False,
    allow_unverified: opt.AllowUnverifiedOpt = False,
    my_private_key_path: opt.PrivateKeyOpt = None,
    debug: opt.DebugOpt = False,
) -> None:
    """Decrypt downloaded .c4gh files and verify them against GHGA's checksum.

    The checksum is read from X.bam.sha256 (or X.bam.c4gh.sha256, from older versions)
    beside X.bam.c4gh. A file whose content fails authentication or its checksum leaves
    no output behind; a file without a checksum file is decrypted but reported
    'unverified' (exit 1 unless --allow-unverified).
    """
    options = global_options(ctx, debug)

    def work() -> int:
        target_dir = output_dir if output_dir is not None else input_dir
        sources = decrypt_sources(input_dir, target_dir)
        secret = load_secret_key(load_run_config(options, offline=True), my_private_key_path)
        reporter = make_reporter(options)
        outcomes = decrypt_batch(
            sources,
            target_dir,
            secret,
            reporter,
            overwrite=overwrite,
            allow_unverified=allow_unverified,
        )
        return summary(options, outcomes, "Decrypt", allow_unverified=allow_unverified)

    raise typer.Exit(execute(options, work))


@app.command("ls", epilog=opt.LS_EXAMPLE)
def list_files(
    ctx: typer.Context,
    show_all: opt.ShowAllOpt = False,
    details: opt.LsDetailsOpt = False,
    wpat_file: opt.WpatFileOpt = None,
    wpat: opt.WpatOpt = None,
    my_public_key_path: opt.PublicKeyOpt = None,
    my_private_key_path: opt.PrivateKeyOpt = None,
    debug: opt.DebugOpt = False,
) -> None:
    """List the files of a work package: uploads in the box, or files you may download."""
    options = global_options(ctx, debug)

    def work() -> int:
        credentials = Credentials(wpat_file, wpat, my_public_key_path, my_private_key_path)
        run = credentials.start(load_run_config(options), listing_reporter(options))
        rows, _ = run.run(lambda s: s.handler.listing(show_all=show_all, details=details))
        return print_rows(options, [row.as_row() for row in rows], tables.print_listing)

    raise typer.Exit(execute(options, work))


@app.command("delete", epilog=opt.DELETE_EXAMPLE)
def delete(
    ctx: typer.Context,
    alias: opt.DeleteAliasOpt = None,
    file_id: opt.DeleteFileIdOpt = None,
    yes: opt.YesOpt = False,
    wpat_file: opt.WpatFileOpt = None,
    wpat: opt.WpatOpt = None,
    my_public_key_path: opt.PublicKeyOpt = None,
    my_private_key_path: opt.PrivateKeyOpt = None,
    debug: opt.DebugOpt = False,
) -> None:
    """Remove a file, or cancel an unfinished upload, in your upload box."""
    options = global_options(ctx, debug)

    def work() -> int:
        if (alias is None) == (file_id is None):
            raise UserInputError("Give exactly one of --alias or --file-id.")
        credentials = Credentials(wpat_file, wpat, my_public_key_path, my_private_key_path)
        run = credentials.start(load_run_config(options), listing_reporter(options))

        async def go(session: Session) -> str:
            item = await session.handler.find_upload(alias=alias, file_id=file_id)
            question = f"Remove {clean_text(item.alias)} ({item.state.value}) from the upload box?"
            if not confirm_deletion(question, yes=yes):
                return "kept"
            await session.handler.remove_upload(item)
            return f"removed {item.alias}"

        result, _ = run.run(go)
        print_note(result)
        return EXIT_OK

    raise typer.Exit(execute(options, work))


@app.command("status", epilog=opt.STATUS_EXAMPLE)
def status(ctx: typer.Context) -> None:
    """List unfinished uploads that the next 'upload' of the same file will continue."""
    options = global_options(ctx)

    def work() -> int:
        rows = [
            asdict(u) for u in unfinished_uploads(load_run_config(options, offline=True).state_dir)
        ]
        return print_rows(options, rows, tables.print_unfinished)

    raise typer.Exit(execute(options, work))


@app.command("config", epilog=opt.CONFIG_EXAMPLE)
def show_config(ctx: typer.Context) -> None:
    """Show the effective configuration and where each value comes from."""
    options = global_options(ctx)

    def work() -> int:
        sources, path = describe_sources(options.config_file, redact={"proxy": safe_proxy_url})
        rows = [asdict(source) for source in sources]
        return print_rows(options, rows, lambda r: tables.print_config(r, path))

    raise typer.Exit(execute(options, work))


#: Names of earlier versions of this module.
_config_origin, _fail, _summary = config_origin, fail, summary


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def run() -> None:
    """Console-script entry point.

    ``SIGTERM`` raises :class:`~ghga_connector.errors.Terminated` (handled like Ctrl-C,
    exit 143); while a transfer runs it cancels the event loop's task instead
    (``cli_session``). A ``SIGTERM`` ignored at start stays ignored.
    """
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN and hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        app()
    except KeyboardInterrupt as interrupt:  # pragma: no cover - during argument parsing
        sys.exit(getattr(interrupt, "exit_code", EXIT_INTERRUPTED))
    except BrokenPipeError:  # help or --version into a closed pipe
        sys.exit(closed_stdout().exit_code)

"""The options of the ``ghga-connector`` commands, and the checks of their combinations.

Options several commands share (token, keys, ``--shard``, ``--debug``) are defined once
here as Typer ``Annotated`` types; so are the longer per-command ones, to keep the
command functions in :mod:`ghga_connector.cli` readable as a list of what they accept.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from ghga_connector import package_version
from ghga_connector.errors import EXIT_OK, OutputError, UserInputError
from ghga_connector.manifest import load_manifest
from ghga_connector.sharding import Shard, parse_shard

__all__ = [
    "GlobalOptions",
    "check_output_folder",
    "check_stdout_request",
    "require_output_dir",
    "upload_entries",
]


@dataclass
class GlobalOptions:
    """Options given before the command."""

    debug: bool = False
    json: bool = False
    quiet: bool = False
    config_file: Path | None = None
    #: Which configuration is in force, once loaded (for messages).
    config_origin: str | None = None


def _shard_option(value: str | None) -> Shard | None:
    if value is None:
        return None
    try:
        return parse_shard(value)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


def upload_entries(
    files: list[Path] | None, manifest: Path | None, alias: str | None
) -> list[tuple[Path, str]]:
    """``upload``: the ``(path, alias)`` pairs from FILE arguments or the --manifest.

    Raises:
        UserInputError: both or neither given, or --alias with several files.
        InputFileError: the manifest cannot be read (see :func:`load_manifest`).
    """
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


def require_output_dir(output_dir: Path | None) -> Path:
    """``download`` without ``--output -`` needs ``--output-dir``: return it.

    Raises:
        UserInputError: it is missing.
    """
    if output_dir is None:
        raise UserInputError(
            "Missing option --output-dir.",
            hint="Name a folder (created if missing), or use --output - with one --file.",
        )
    return output_dir


def check_output_folder(folder: Path, *, create: bool = True) -> None:
    """The ``--output-dir`` of ``download``: created (with its parents) when missing.

    ``create`` false (``--dry-run``): a missing folder is left missing.

    As ``aws s3 cp`` and ``rclone copy`` do; new folders get mode 0700 (the files in it
    are the user's own data, 0600).

    Raises:
        OutputError: it exists but is not a folder, or it cannot be created.
    """
    if folder.is_dir():
        return
    if folder.exists() or folder.is_symlink():
        raise OutputError(
            f"The output folder {str(folder)!r} is not a folder.",
            hint="Name a folder with --output-dir.",
        )
    if not create:
        return
    try:
        folder.mkdir(mode=0o700, parents=True)
    except OSError as error:
        raise OutputError(
            f"The output folder {str(folder)!r} cannot be created: {error.strerror}.",
            hint="Name a folder you may write to with --output-dir.",
        ) from None


def check_stdout_request(
    output: str, accessions: list[str], *, decrypt: bool, clashing: list[str]
) -> None:
    """``download --output -``: one --file, --decrypt, a pipe, none of the ``clashing`` options.

    Raises:
        UserInputError: naming what is wrong.
    """
    if output != "-":
        raise UserInputError(
            f"--output takes only '-' (standard output), not {output!r}.",
            hint="Use --output-dir FOLDER to write files.",
        )
    if len(accessions) != 1:
        raise UserInputError("--output - needs exactly one --file ACCESSION.")
    if not decrypt:
        raise UserInputError(
            "--output - writes decrypted data: add --decrypt.",
            hint="Encrypted files are downloaded with --output-dir.",
        )
    if clashing:
        raise UserInputError(f"--output - cannot be combined with {', '.join(clashing)}.")
    if sys.stdout.isatty():
        raise UserInputError(
            "Standard output is a terminal; --output - is for a pipe.",
            hint="Pipe it into a program, e.g. '... --output - | samtools view -c -'.",
        )


# --- help texts ---------------------------------------------------------------------

APP_HELP = (
    "Upload files to and download files from GHGA, the German Human Genome-Phenome "
    "Archive. Files are Crypt4GH-encrypted on your machine before upload and checked "
    "after download.\n\n"
    "Typical use:\n\n"
    "  ghga-connector upload --wpat-file upload.wpat sample1.bam sample2.bam\n\n"
    "  ghga-connector download --wpat-file download.wpat --output-dir data --decrypt\n\n"
    "--json, --quiet, --debug and --config may also follow the command (ghga-connector ls --json)."
)
UPLOAD_EXAMPLES = (
    "Examples:\n\n"
    "  ghga-connector upload --wpat-file upload.wpat sample1.bam sample2.vcf.gz\n\n"
    "  ghga-connector upload --wpat-file upload.wpat --alias tumor.bam /data/x.bam\n\n"
    "  ghga-connector upload --wpat-file upload.wpat --manifest files.tsv --dry-run"
)
DOWNLOAD_EXAMPLES = (
    "Examples:\n\n"
    "  ghga-connector download --wpat-file download.wpat --output-dir data\n\n"
    "  ghga-connector download --wpat-file download.wpat --output-dir data --decrypt\n\n"
    "  ghga-connector download --wpat-file download.wpat --output-dir data --file GHGAF00000000000001"
)
DECRYPT_EXAMPLE = (
    "Example:\n\n  ghga-connector decrypt --input-dir data --my-private-key-path key.sec"
)
STATUS_EXAMPLE = "Example:\n\n  ghga-connector status --json"
CONFIG_EXAMPLE = (
    "Examples:\n\n  ghga-connector config\n\n"
    "  ghga-connector config --config ~/.ghga-sandbox/.ghga_connector.yaml --json"
)
BATCH_UPLOAD_EXAMPLE = (
    "Example (a TSV file of 'path<TAB>alias' lines; 'upload --manifest' is the same):\n\n"
    "  ghga-connector batch-upload --tsv files.tsv --wpat-file upload.wpat"
)
LS_EXAMPLE = "Example:\n\n  ghga-connector ls --wpat-file upload.wpat"
DELETE_EXAMPLE = "Example:\n\n  ghga-connector delete --wpat-file upload.wpat --alias sample1.bam"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ghga-connector {package_version()}")
        raise typer.Exit(EXIT_OK)


# --- global options -----------------------------------------------------------------

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Write one JSON object per file to standard output.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Show errors only.")]
ConfigFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="YAML configuration file (default: $GHGA_CONNECTOR_CONFIG_YAML, "
        "./.ghga_connector.yaml, ~/.ghga_connector.yaml).",
    ),
]
VersionOpt = Annotated[
    bool,
    typer.Option(
        "--version", "-V", callback=_version, is_eager=True, help="Show the version and exit."
    ),
]
DebugOpt = Annotated[
    bool, typer.Option("--debug", help="Show tracebacks and request details on errors.")
]

# --- shared by several commands -----------------------------------------------------

ParallelFilesOpt = Annotated[
    int | None,
    typer.Option(
        "--parallel-files",
        min=1,
        max=5,
        metavar="N",
        help="Files transferred at the same time (the max_parallel_files setting, default 4).",
        show_default=False,
    ),
]
PartsInFlightOpt = Annotated[
    int | None,
    typer.Option(
        "--parts-in-flight",
        min=1,
        max=64,
        metavar="N",
        help="Parts or ranges in flight at once, all files together (the "
        "max_concurrent_uploads / max_concurrent_downloads setting, default 6).",
        show_default=False,
    ),
]


def concurrency(
    direction: str, parallel_files: int | None, parts_in_flight: int | None
) -> dict[str, int]:
    """The settings that --parallel-files and --parts-in-flight name, as overrides.

    ``direction``: ``upload`` or ``download``; for :func:`~ghga_connector.config.load_config`.
    """
    overrides: dict[str, int] = {}
    if parallel_files is not None:
        overrides["max_parallel_files"] = parallel_files
    if parts_in_flight is not None:
        overrides[f"max_concurrent_{direction}s"] = parts_in_flight
    return overrides


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
ShardOpt = Annotated[
    Shard | None,
    typer.Option(
        "--shard",
        metavar="K/N",
        parser=_shard_option,
        help="Process only the K-th of N shares of the files (1-based; the same shares on "
        "every host), e.g. --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT.",
    ),
]
AllowUnverifiedOpt = Annotated[
    bool,
    typer.Option(
        "--allow-unverified",
        help="Give files without a checksum to verify them with their final name (else they "
        "are kept as X.unverified) and exit 0 for them (still reported 'unverified').",
    ),
]

# --- upload -------------------------------------------------------------------------

UploadFilesArg = Annotated[
    list[Path] | None,
    typer.Argument(metavar="FILE...", help="Files to upload; each keeps its file name as alias."),
]
ManifestOpt = Annotated[
    Path | None,
    typer.Option(
        "--manifest",
        "--tsv",
        metavar="TSV",
        help="TSV file of 'path<TAB>alias' lines (a 'path<TAB>alias' header line is skipped).",
    ),
]
UploadAliasOpt = Annotated[
    str | None,
    typer.Option("--alias", metavar="ALIAS", help="Alias for a single FILE (default: its name)."),
]
UploadOverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace files already in the upload box.")
]
UploadDryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Check token, box, keys and files; print the plan; send nothing."
    ),
]
RestartOpt = Annotated[
    bool,
    typer.Option(
        "--restart",
        help="Start interrupted uploads from the beginning instead of continuing them.",
    ),
]

# --- batch-upload (ghga-connector 4.x) ----------------------------------------------

BatchTsvOpt = Annotated[Path, typer.Option("--tsv", help="TSV file of 'path<TAB>alias' lines.")]
BatchOverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing files.")]
BatchDryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")]
MaxRetriesOpt = Annotated[
    int,
    typer.Option(
        "--max-retries", help="Accepted for compatibility; parts are retried individually."
    ),
]
ShortenNamesOpt = Annotated[
    bool, typer.Option("--shorten-names", help="Accepted for compatibility; no effect.")
]

# --- download -----------------------------------------------------------------------

OutputDirOpt = Annotated[
    Path | None,
    typer.Option("--output-dir", help="Folder to write the files into (created if missing)."),
]
StdoutOpt = Annotated[
    str | None,
    typer.Option(
        "--output",
        metavar="-",
        help="'-': write the decrypted bytes of the one --file to standard output "
        "(needs --decrypt; nothing is written to disk; messages go to standard error).",
    ),
]
AccessionsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--file",
        metavar="ACCESSION",
        help="Download only this file: its accession (GHGAF…) as listed by "
        "'ghga-connector ls' with the download token (repeatable).",
    ),
]
DecryptOpt = Annotated[
    bool,
    typer.Option(
        "--decrypt",
        help="Decrypt while downloading: write the plaintext, keep no encrypted copy.",
    ),
]
DownloadOverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace files that exist in the output folder.")
]
DownloadDryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show what would be downloaded; send nothing else.")
]
WaitOpt = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="Wait for files another process is transferring, then check them, instead of "
        "reporting them 'busy' (exit 75).",
    ),
]

VerifyOpt = Annotated[
    bool,
    typer.Option(
        "--verify",
        help="Read files that are already there (checksum; every Crypt4GH segment) "
        "and download damaged ones again (without it, a file the connector verified when "
        "it downloaded it is skipped unread).",
    ),
]

# --- decrypt ------------------------------------------------------------------------

InputDirOpt = Annotated[Path, typer.Option("--input-dir", help="Folder with .c4gh files.")]
DecryptOutputDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--output-dir",
        help="Existing folder for the decrypted files (default: the input folder).",
    ),
]
DecryptOverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]

# --- ls, delete ---------------------------------------------------------------------

ShowAllOpt = Annotated[
    bool,
    typer.Option("--all", help="Also list removed (cancelled) uploads of the upload box."),
]
LsDetailsOpt = Annotated[
    bool,
    typer.Option(
        "--details",
        help="Download packages: also show each file's size, SHA-256 checksum and staging "
        "state. This asks GHGA for every listed file, which makes GHGA stage each of them "
        "(copy it from permanent storage for download); without it 'ls' asks nothing of "
        "the download service.",
    ),
]
DeleteAliasOpt = Annotated[
    str | None, typer.Option("--alias", help="Alias of the upload to remove.")
]
DeleteFileIdOpt = Annotated[
    str | None, typer.Option("--file-id", help="File id of the upload to remove.")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]

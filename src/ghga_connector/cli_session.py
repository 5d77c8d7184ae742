"""What every command of the CLI does before and around the handler.

Reading the global options, loading the configuration (and saying which one is in
force), choosing the reporter, loading the key pair and the access token
(:class:`Credentials`), running one :func:`~ghga_connector.inject.open_session`
(:class:`CommandRun`), and turning outcomes and errors into messages and exit codes
(:func:`summary`, :func:`execute`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from ghga_connector.c4gh.keys import (
    KeyPair,
    default_key_paths,
    load_key_pair,
    load_private_key,
    private_key_is_exposed,
)
from ghga_connector.cli_options import GlobalOptions
from ghga_connector.config import CONFIG_FILE_NAME, Config, load_config
from ghga_connector.core.ports import ProgressReporter
from ghga_connector.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_BUSY,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ConnectorError,
    PassphraseError,
    Terminated,
    UserInputError,
)
from ghga_connector.inject import Session, open_session
from ghga_connector.models import FileOutcome, Outcome
from ghga_connector.prompts import (
    passphrase_source,
    prompts_interactively,
    read_wpat,
    token_file_is_exposed,
)
from ghga_connector.reporting import tables
from ghga_connector.reporting.console import (
    JsonReporter,
    PlainReporter,
    QuietReporter,
    RichReporter,
)
from ghga_connector.reporting.errors import print_error, print_interrupted, print_note
from ghga_connector.reporting.json_lines import write_json_lines, write_planned
from ghga_connector.sharding import Shard, select_share

__all__ = [
    "CommandRun",
    "Credentials",
    "closed_stdout",
    "config_origin",
    "confirm_deletion",
    "execute",
    "fail",
    "global_options",
    "is_production",
    "key_paths",
    "listing_reporter",
    "load_run_config",
    "load_secret_key",
    "make_reporter",
    "print_rows",
    "summary",
    "take_share",
]

#: Tries for a passphrase typed at the prompt.
PASSPHRASE_ATTEMPTS = 3

T = TypeVar("T")


def _err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def global_options(ctx: typer.Context, debug: bool = False) -> GlobalOptions:
    """The options given before the command (``debug``: also given after it).

    With --debug, the request log goes to standard error: method, host and path,
    status, time; no query strings, no headers (adapters/http.py LoggingTransport).
    """
    options = ctx.obj if isinstance(ctx.obj, GlobalOptions) else GlobalOptions()
    options.debug = options.debug or debug
    if options.debug:
        logging.basicConfig(
            level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
        )
        logging.getLogger("ghga_connector").setLevel(logging.DEBUG)
    return options


def fail(options: GlobalOptions, error: BaseException, code: int) -> typer.Exit:
    """Print ``error`` (see :func:`~ghga_connector.reporting.errors.print_error`); the exit.

    With ``--json`` a failure record also goes to standard output:
    ``{"error": message, "error_code": name, "exit_code": code}`` (``error_code``
    ``internal`` for an error the connector did not expect).
    """
    print_error(error, debug=options.debug, config_origin=options.config_origin)
    if options.json:
        record: dict[str, str | int] = {
            "error": f"{type(error).__name__}: {error}",
            "error_code": INTERNAL_ERROR_CODE,
            "exit_code": code,
        }
        if isinstance(error, ConnectorError):
            record |= {"error": error.message, "error_code": error.error_code}
        try:
            write_json_lines([record])
            sys.stdout.flush()
        except BrokenPipeError:
            return closed_stdout()
    return typer.Exit(code)


#: ``error_code`` of a ``--json`` failure record for an error the connector did not expect.
INTERNAL_ERROR_CODE = "internal"


def execute(options: GlobalOptions, work: Callable[[], T]) -> T:
    """Run ``work``, turning errors into messages and exit codes.

    Raises:
        typer.Exit: on any error (its exit code), or on Ctrl-C (130).
    """
    try:
        result = work()
        sys.stdout.flush()  # a reader that went away is noticed here, not at exit
        return result
    except typer.Exit:
        raise
    except BrokenPipeError:
        raise closed_stdout() from None
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (Terminated)
        print_interrupted()
        raise typer.Exit(getattr(interrupt, "exit_code", EXIT_INTERRUPTED)) from None
    except ConnectorError as error:
        raise fail(options, error, error.exit_code) from None
    except Exception as error:
        raise fail(options, error, EXIT_FAILURE) from None


def closed_stdout() -> typer.Exit:
    """Standard output was closed by its reader (``… | head -1``): exit quietly with 141.

    A closed standard output is normal in a pipeline; like coreutils (whom SIGPIPE ends,
    which a shell reports as 128 + 13) the connector stops without a message. Standard
    output is pointed at the null device so that the flush at exit cannot fail again.
    """
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError):  # no real file descriptor (a test runner's stream)
        pass
    return typer.Exit(EXIT_BROKEN_PIPE)


def summary(
    options: GlobalOptions,
    outcomes: list[FileOutcome],
    verb: str,
    session: Session | None = None,
    *,
    allow_unverified: bool = False,
) -> int:
    """Print the final table; return the exit code.

    Precedence when files ended differently (the first that applies): 1 if any file
    failed, or was written ``unverified`` (no checksum to compare with) and
    ``allow_unverified`` is not set; 75 (``EX_TEMPFAIL``) if any file is ``busy`` in
    another process; else 0. (2 and 130 end a run before its summary.)
    """
    failed = sum(o.outcome is Outcome.FAILED for o in outcomes)
    unverified = sum(o.outcome is Outcome.UNVERIFIED for o in outcomes)
    busy = sum(o.outcome is Outcome.BUSY for o in outcomes)
    if options.json:
        write_planned(outcomes)
    elif not options.quiet:
        tables.print_summary(outcomes, verb, session.retry_stats.by_reason if session else None)
    if failed:
        if not options.json:
            tables.print_failed_count(failed, len(outcomes))
        return EXIT_FAILURE
    if unverified and not allow_unverified:
        tables.print_unverified_hint(unverified, len(outcomes))
        return EXIT_FAILURE
    if busy:
        tables.print_busy_hint(busy, len(outcomes))
        return EXIT_BUSY
    return EXIT_OK


def print_rows(
    options: GlobalOptions,
    rows: Sequence[Mapping[str, Any]],
    table: Callable[[Sequence[Mapping[str, Any]]], None],
) -> int:
    """``ls``, ``status``, ``config``: JSON lines with --json, else ``table(rows)``; exit 0."""
    if options.json:
        write_json_lines(rows)
    else:
        table(rows)
    return EXIT_OK


def config_origin(config: Config, path: Path | None) -> str:
    """Which configuration is in force, in words (no secrets: settings hold none)."""
    url = str(config.wkvs_api_url)
    if path is not None:
        return f"{path} (wkvs_api_url {url})"
    default = str(Config.model_fields["wkvs_api_url"].default)
    where = f"no {CONFIG_FILE_NAME} here or in ~/"
    if url == default:
        return f"{where}; using GHGA production ({url})"
    return f"{where}; wkvs_api_url {url} from the environment"


def load_run_config(
    options: GlobalOptions,
    overrides: Mapping[str, Any] | None = None,
    *,
    offline: bool = False,
) -> Config:
    """The configuration of this run; notes its origin in ``options`` (shown with --debug).

    Services other than GHGA production are named on standard error, unless ``offline``
    (a command that contacts no service) or ``--quiet``. ``overrides``: settings given
    on the command line (they win over every source).

    Raises:
        ConfigurationError: see :func:`~ghga_connector.config.load_config`.
    """
    config, path = load_config(options.config_file, **(overrides or {}))
    options.config_origin = config_origin(config, path)
    if options.debug:
        print_note(f"Configuration: {options.config_origin}")
    elif not (offline or options.quiet or is_production(config)):
        print_note(f"Using the GHGA services at {config.wkvs_api_url} (not GHGA production).")
    return config


def is_production(config: Config) -> bool:
    """Whether ``config`` names GHGA production's well-known value service (the default)."""
    return str(config.wkvs_api_url) == str(Config.model_fields["wkvs_api_url"].default)


def make_reporter(options: GlobalOptions) -> ProgressReporter:
    """The reporter of a transfer: JSON lines, errors only, progress bars, or log lines."""
    console = _err_console()
    if options.json:
        return JsonReporter(console)
    if options.quiet:
        return QuietReporter(console)
    if console.is_terminal:
        return RichReporter(console)
    return PlainReporter(console)


class _WarningsReporter(QuietReporter):
    """Errors and warnings only: for commands that transfer nothing (ls, delete)."""

    def message(self, text: str, *, level: str = "info") -> None:
        """Warnings and errors on standard error."""
        if level != "info":
            self.console.print(text, highlight=False, markup=False)


def listing_reporter(options: GlobalOptions) -> ProgressReporter:
    """The reporter of a command that transfers nothing: warnings (none with --quiet)."""
    console = _err_console()
    return QuietReporter(console) if options.quiet else _WarningsReporter(console)


def key_paths(config: Config, public: Path | None, private: Path | None) -> tuple[Path, Path]:
    """The key files: the options, else the settings, else :func:`default_key_paths`."""
    public = public or config.my_public_key_path
    private = private or config.my_private_key_path
    if public is None or private is None:
        default_public, default_private = default_key_paths()
        public = public or default_public
        private = private or default_private
    return public.expanduser(), private.expanduser()


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


def load_secret_key(config: Config, private: Path | None) -> bytes:
    """Only the private key (``decrypt``): the option, else the setting, else the default.

    Raises:
        KeyFileError, PassphraseError: it cannot be loaded.
    """
    _, path = key_paths(config, Path("-"), private)  # "-" stands in for the public key
    return load_private_key(path, passphrase_source(path))


def confirm_deletion(question: str, *, yes: bool) -> bool:
    """``yes``, or the user's answer to ``question`` at the terminal.

    Raises:
        UserInputError: no ``yes`` and standard input is not a terminal.
    """
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UserInputError("Refusing to delete without confirmation; pass --yes.")
    return typer.confirm(question)


def take_share(
    items: Sequence[T],
    shard: Shard,
    reporter: ProgressReporter,
    *,
    size: Callable[[T], int] | None,
    name: Callable[[T], str],
) -> list[T]:
    """The items of ``shard`` (see :func:`select_share`), announced through ``reporter``.

    ``size`` in bytes; ``None`` when sizes are not known yet: shares by count.
    """
    chosen = select_share(items, shard, size=size or (lambda _: 1), name=name)
    nbytes = f", {sum(map(size, chosen)):,} bytes" if size is not None else ""
    reporter.message(f"Shard {shard}: {len(chosen)} of {len(items)} file(s){nbytes}.")
    return chosen


def _ignore(_: str) -> None:
    """Discard a message (used where the CLI already said it)."""


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
            UserInputError: both --wpat and --wpat-file.
            TokenError: no usable token.
            KeyFileError, PassphraseError: the key pair cannot be loaded.
        """
        if self.wpat_file is not None and self.wpat:
            raise UserInputError(
                "Give the access token either with --wpat-file or with --wpat, not both."
            )
        if self.wpat:
            reporter.message(
                "Warning: passing the access token with --wpat makes it visible to other "
                "users of this machine; prefer --wpat-file or GHGA_CONNECTOR_WPAT.",
                level="warning",
            )
        public, private = key_paths(config, self.public_key, self.private_key)
        keys = _load_keys(public, private, reporter)
        token = read_wpat(self.wpat_file, self.wpat, _ignore)
        if self.wpat_file is not None and token_file_is_exposed(self.wpat_file):
            reporter.message(
                f"Warning: the token file {str(self.wpat_file)!r} is readable by other users; "
                f"restrict it with 'chmod 600 {self.wpat_file}'.",
                level="warning",
            )
        return keys, token

    def start(self, config: Config, reporter: ProgressReporter) -> CommandRun:
        """Load the key pair and the token (prompting if needed) for one command run.

        Raises:
            see :meth:`load`.
        """
        keys, token = self.load(reporter, config)
        return CommandRun(config, reporter, keys, token)


@dataclass(frozen=True)
class CommandRun:
    """One command's configuration, reporter and credentials, ready to open a session."""

    config: Config
    reporter: ProgressReporter
    keys: KeyPair
    token: str

    def run(self, work: Callable[[Session], Awaitable[T]]) -> tuple[T, Session]:
        """Open a session, await ``work(session)`` in a new event loop, close the session.

        Progress bars (a :class:`RichReporter`) are shown while it runs.

        ``SIGTERM`` cancels the run like Ctrl-C does.

        Raises:
            Terminated: ``SIGTERM`` arrived (exit 143).
            whatever :func:`~ghga_connector.inject.open_session` or ``work`` raise.
        """
        terminated: list[bool] = []

        async def go() -> tuple[T, Session]:
            with _sigterm_cancels(terminated):
                async with open_session(
                    self.config, self.keys, self.token, self.reporter
                ) as session:
                    return await work(session), session

        def run() -> tuple[T, Session]:
            try:
                return asyncio.run(go())
            except asyncio.CancelledError:
                if terminated:
                    raise Terminated from None
                raise

        if isinstance(self.reporter, RichReporter):
            with self.reporter:
                return run()
        return run()


@contextmanager
def _sigterm_cancels(terminated: list[bool]) -> Iterator[None]:
    """While the block runs, ``SIGTERM`` cancels the current task (as Ctrl-C does).

    Appends to ``terminated`` when it fires, so that the caller raises
    :class:`~ghga_connector.errors.Terminated` (exit 143) instead of a plain
    cancellation. A ``SIGTERM`` that is ignored when the run starts stays ignored.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    previous = signal.getsignal(signal.SIGTERM)
    if task is None or previous is signal.SIG_IGN:
        yield
        return

    def cancel() -> None:
        terminated.append(True)
        task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, cancel)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread; Windows
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, previous)

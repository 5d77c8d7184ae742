"""The error lines of the CLI: one line saying what is wrong, one saying what to do."""

from __future__ import annotations

import traceback

from rich.console import Console

from ghga_connector.errors import ConnectorError, ServiceUnreachableError
from ghga_connector.reporting.console import plain

__all__ = ["print_error", "print_interrupted", "print_note"]


def _err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_error(
    error: BaseException, *, debug: bool = False, config_origin: str | None = None
) -> None:
    """Print ``error`` on standard error: its message and hint, the traceback with ``debug``.

    ``config_origin`` (which configuration is in force) is added when a service cannot
    be reached, since a wrong URL is the usual cause.
    """
    console = _err_console()
    if debug:
        console.print("".join(traceback.format_exception(error)), markup=False)
    if isinstance(error, ConnectorError):
        console.print(plain("Error: ", "bold red") + plain(error.message), highlight=False)
        if error.hint:
            console.print(plain(f"  {error.hint}"), highlight=False)
        if isinstance(error, ServiceUnreachableError) and config_origin:
            console.print(plain(f"  Configuration: {config_origin}."), highlight=False)
    else:
        text = plain(f"{type(error).__name__}: {error}")
        console.print(plain("Error: ", "bold red") + text, highlight=False)
        if not debug:
            console.print("  Rerun with --debug for details.", highlight=False)


def print_interrupted() -> None:
    """``Interrupted.`` on standard error (Ctrl-C)."""
    _err_console().print("[yellow]Interrupted.[/]")


def print_note(text: str) -> None:
    """One line on standard error, printed literally (no markup; escapes removed)."""
    _err_console().print(plain(text), highlight=False)

"""The tables of the CLI: transfer summaries, ``ls``, ``status`` and ``config``.

Every value may come from the server or from a file name anybody chose: cells are
built with :func:`~ghga_connector.reporting.console.plain` (printed literally).
Tables go through :func:`~ghga_connector.reporting.console.print_table`, which never
cuts a value a user may copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ghga_connector.models import FileOutcome
from ghga_connector.reporting.console import plain, print_table

__all__ = [
    "print_config",
    "print_failed_count",
    "print_listing",
    "print_summary",
    "print_unfinished",
    "print_unverified_hint",
]

_OUTCOME_STYLE = {"done": "green", "failed": "red", "skipped": "yellow", "unverified": "yellow"}


def _err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_summary(
    outcomes: Sequence[FileOutcome], verb: str, retries: Mapping[str, int] | None = None
) -> None:
    """The ``{verb} summary`` table on standard error, then the retried requests by reason."""
    table = Table(title=f"{verb} summary", title_justify="left")
    for column in ("file", "result", "size (bytes)", "MB/s", "note"):
        table.add_column(column, overflow="fold")
    for o in outcomes:
        table.add_row(
            plain(o.name),
            plain(o.outcome.value, _OUTCOME_STYLE.get(o.outcome.value, "")),
            f"{o.size:,}",
            f"{o.throughput / 1e6:.1f}" if o.throughput else "",
            plain(o.message),
        )
    print_table(table, stderr=True)
    if retries:
        reasons = ", ".join(f"{k} ×{v}" for k, v in sorted(retries.items()))
        _err_console().print(f"Retried requests: {sum(retries.values())} ({reasons})")


def print_failed_count(failed: int, total: int) -> None:
    """``N of M file(s) failed.`` on standard error."""
    _err_console().print(f"[bold red]{failed} of {total} file(s) failed.[/]", highlight=False)


def print_unverified_hint(unverified: int, total: int) -> None:
    """Why files without a checksum make the run fail, and the option that accepts them."""
    _err_console().print(
        plain(
            f"{unverified} of {total} file(s) could not be verified against a "
            "checksum; pass --allow-unverified to accept them.",
            "bold yellow",
        ),
        highlight=False,
    )


def print_busy_hint(busy: int, total: int) -> None:
    """Why files busy in another process make the run exit 75, and what to do."""
    _err_console().print(
        plain(
            f"{busy} of {total} file(s) are being transferred by another process; "
            "run again later (or with --wait) to confirm them (exit code 75).",
            "bold yellow",
        ),
        highlight=False,
    )


def _listing_cell(row: Mapping[str, Any], key: str) -> str:
    """One cell of the ``ls`` table (``--json`` keeps the raw values)."""
    value = row[key]
    if key == "staged" and isinstance(value, bool):
        return "yes" if value else "no (being staged)"
    if value is None:
        return "known once staged" if key == "size" and row.get("staged") is False else ""
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_listing(rows: Sequence[Mapping[str, Any]]) -> None:
    """The ``ls`` table on standard output (columns: the keys of the first row)."""
    if not rows:
        Console().print("No files.")
        return
    table = Table()
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(plain(_listing_cell(row, key)) for key in row))
    print_table(table)


def print_unfinished(rows: Sequence[Mapping[str, Any]]) -> None:
    """The ``status`` table of unfinished uploads on standard output."""
    if not rows:
        Console().print("No unfinished uploads.")
        return
    table = Table(title="Unfinished uploads", title_justify="left")
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(plain(str(v)) for v in row.values()))
    print_table(table)


def print_config(rows: Sequence[Mapping[str, str]], config_file: Path | None) -> None:
    """The ``config`` table (setting, value, source) on standard output."""
    table = Table(title=f"Configuration file: {config_file or 'none'}", title_justify="left")
    for column in ("setting", "value", "source"):
        table.add_column(column)
    for row in rows:
        table.add_row(plain(row["setting"]), plain(row["value"]), plain(row["source"]))
    print_table(table)

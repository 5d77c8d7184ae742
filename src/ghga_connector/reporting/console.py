"""Progress reporters for the terminal, for logs and for machines.

* :class:`RichReporter`: one rich progress bar per file plus a total (bytes, MB/s, ETA)
  on standard error, when it is a terminal;
* :class:`PlainReporter`: one log line per event on standard error (not a terminal);
* :class:`JsonReporter`: one JSON object per finished file on standard output
  (``--json``), messages on standard error;
* :class:`QuietReporter`: errors only (``--quiet``).

Names and messages may come from the server or from file names anybody chose: they
are printed through :func:`plain` (no Rich markup interpretation, control characters
and ANSI/OSC escape sequences removed), never interpolated into markup.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from dataclasses import asdict
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ghga_connector.core.ports import ProgressReporter
from ghga_connector.models import FileOutcome, Outcome
from ghga_connector.retrying import RetryNotice

if TYPE_CHECKING:
    from rich.progress import TaskID

__all__ = [
    "JsonReporter",
    "PlainReporter",
    "QuietReporter",
    "RichReporter",
    "clean_text",
    "outcome_json",
    "plain",
    "print_table",
]

_STYLE = {"info": "", "warning": "yellow", "error": "bold red"}
_OUTCOME_STYLE = {"done": "green", "failed": "red", "skipped": "yellow", "unverified": "yellow"}

#: ANSI/ECMA-48 sequences: CSI (``ESC [ … final``), OSC/DCS/SOS/PM/APC strings (ended by
#: BEL or ``ESC \``, or unterminated), and two-byte ``ESC x``; C1 forms as well.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -~]?"
)
#: Remaining C0 controls (tab and newline become spaces), DEL and C1 controls.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean_text(text: str) -> str:
    """``text`` without terminal escape sequences and control characters (one line)."""
    return _CONTROLS.sub(lambda m: " " if m[0] in "\t\n\r" else "", _ESCAPES.sub("", text))


def plain(text: str, style: str = "") -> Text:
    """A :class:`rich.text.Text` of ``text`` cleaned: printed literally, markup not parsed."""
    return Text(clean_text(text), style=style)


#: ``error_code`` of a failed file whose failure came from no connector error (a file
#: that changed, a lock that could not be taken, a different file under the alias).
FAILED_CODE = "transfer_failed"


def outcome_json(outcome: FileOutcome) -> dict[str, Any]:
    """The ``--json`` record of a file outcome.

    A ``failed`` record has ``"error_code"``: a stable name (see
    :mod:`ghga_connector.errors`); other records have none.
    """
    record: dict[str, Any] = {
        "file": outcome.name,
        "outcome": outcome.outcome.value,
        "bytes": outcome.size,
        "seconds": round(outcome.seconds, 3),
        "path": str(outcome.path) if outcome.path else None,
        "message": outcome.message or None,
        **outcome.details,
    }
    if outcome.outcome is Outcome.FAILED:
        record["error_code"] = outcome.error_code or FAILED_CODE
    return record


class QuietReporter(ProgressReporter):
    """Shows nothing but errors."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)

    def file_started(self, name: str, total: int) -> None:
        """Ignored."""

    def advance(self, name: str, nbytes: int) -> None:
        """Ignored."""

    def file_status(self, name: str, status: str) -> None:
        """Ignored."""

    def file_finished(self, outcome: FileOutcome) -> None:
        """Only failures are shown."""
        if outcome.outcome is Outcome.FAILED:
            self.console.print(
                plain(f"✗ {outcome.name}: {outcome.message}", "bold red"), highlight=False
            )
        elif outcome.outcome is Outcome.UNVERIFIED:
            self.console.print(
                plain(f"! {outcome.name}: {outcome.message}", "yellow"), highlight=False
            )

    def message(self, text: str, *, level: str = "info") -> None:
        """Only errors are shown."""
        if level == "error":
            self.console.print(plain(text, "bold red"), highlight=False)


class PlainReporter(QuietReporter):
    """One line per event, for logs and pipes (repeated states at most every 30 s)."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__(console)
        self._last_status: dict[str, tuple[str, float]] = {}

    def file_started(self, name: str, total: int) -> None:
        """Log the start."""
        self.console.print(plain(f"{name}: started ({total:,} bytes)"), highlight=False)

    def file_status(self, name: str, status: str) -> None:
        """Log the state; a countdown that only changes its numbers is not repeated."""
        shape = re.sub(r"\d+", "#", status)
        now = time.monotonic()
        last = self._last_status.get(name)
        if last is not None and last[0] == shape and now - last[1] < 30:
            return
        self._last_status[name] = (shape, now)
        self.console.print(plain(f"{name}: {status}"), highlight=False)

    def file_finished(self, outcome: FileOutcome) -> None:
        """Log the outcome."""
        if outcome.outcome in (Outcome.FAILED, Outcome.UNVERIFIED):
            super().file_finished(outcome)
            return
        speed = f", {outcome.throughput / 1e6:.1f} MB/s" if outcome.throughput else ""
        note = f" ({outcome.message})" if outcome.message else ""
        self.console.print(
            plain(f"{outcome.name}: {outcome.outcome.value}{note}{speed}"), highlight=False
        )

    def message(self, text: str, *, level: str = "info") -> None:
        """Log the message."""
        self.console.print(plain(text, _STYLE.get(level, "")), highlight=False)


class RichReporter(PlainReporter):
    """Progress bars per file and for the whole batch, on a terminal."""

    def __init__(self, console: Console | None = None) -> None:
        # rich.progress only on a terminal: the other reporters start without it.
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        super().__init__(console)
        self.progress = Progress(
            TextColumn("{task.description}", justify="left", markup=False),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._total: TaskID | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def file_started(self, name: str, total: int) -> None:
        """Add a bar (and grow the overall bar once there are several files)."""
        with self._lock:
            if self._total is None:  # first row, shown once a second file starts
                self._total = self.progress.add_task("all files", total=0, status="", visible=False)
            task = self._tasks.get(name)
            if task is None:
                self._tasks[name] = self.progress.add_task(clean_text(name), total=total, status="")
            else:
                self.progress.reset(task, total=total, status="")
            totals = sum(t.total or 0 for t in self.progress.tasks if t.id != self._total)
            done = sum(t.completed for t in self.progress.tasks if t.id != self._total)
            self.progress.update(
                self._total, total=totals, completed=done, visible=len(self._tasks) > 1
            )

    def advance(self, name: str, nbytes: int) -> None:
        """Move a bar and the overall bar."""
        task = self._tasks.get(name)
        if task is not None:
            self.progress.update(task, advance=nbytes, status="")
        if self._total is not None:
            self.progress.update(self._total, advance=nbytes)

    def file_status(self, name: str, status: str) -> None:
        """Show a state next to the bar."""
        task = self._tasks.get(name)
        if task is None:
            with self._lock:
                self._tasks[name] = task = self.progress.add_task(
                    clean_text(name), total=None, status=""
                )
        self.progress.update(task, status=escape(clean_text(status)))

    def file_finished(self, outcome: FileOutcome) -> None:
        """Complete the bar and print the outcome above the bars."""
        task = self._tasks.get(outcome.name)
        if task is not None:
            label = {
                Outcome.DONE: "[green]done[/]",
                Outcome.FAILED: "[red]failed[/]",
                Outcome.UNVERIFIED: "[yellow]unverified[/]",
            }.get(outcome.outcome, outcome.outcome.value)
            self.progress.update(task, status=label)
            if outcome.outcome is Outcome.DONE:
                total = self.progress.tasks[task].total or outcome.size
                self.progress.update(task, completed=total)
        if outcome.outcome is not Outcome.DONE:
            super().file_finished(outcome)

    def message(self, text: str, *, level: str = "info") -> None:
        """Print above the bars."""
        super().message(text, level=level)


class JsonReporter(QuietReporter):
    """Newline-delimited JSON: one object per finished file on ``stdout``."""

    def __init__(self, console: Console | None = None, stdout: IO[str] | None = None) -> None:
        super().__init__(console)
        self._out = stdout or sys.stdout

    def file_finished(self, outcome: FileOutcome) -> None:
        """Write the file's JSON record (and a failure also to standard error)."""
        self._out.write(json.dumps(outcome_json(outcome)) + "\n")
        self._out.flush()
        super().file_finished(outcome)

    def message(self, text: str, *, level: str = "info") -> None:
        """Warnings and errors on standard error."""
        if level != "info":
            self.console.print(plain(text), highlight=False)

    def request_retried(self, notice: RetryNotice) -> None:
        """An event record ``{"event": "retry", …}`` on standard output.

        Event records have ``"event"`` and no ``"file"``; file records the reverse.
        """
        record = {"event": "retry", **asdict(notice), "wait": round(notice.wait, 3)}
        self._out.write(json.dumps(record) + "\n")
        self._out.flush()


#: Width used when the output is not a terminal: wide enough that no value is broken.
PIPED_WIDTH = 4096


def print_table(table: Table, *, stderr: bool = False, console: Console | None = None) -> None:
    """Print ``table`` without cutting any value a user may copy (ids, accessions, URLs).

    On a terminal, values that do not fit are folded onto further lines of their cell
    (never shortened with "…"); when the output is piped or redirected, every row stays
    on one line, however long.
    """
    for column in table.columns:
        column.overflow = "fold"
        column.no_wrap = False
    if console is None:
        console = Console(stderr=stderr, highlight=False)
        if not console.is_terminal:
            console = Console(stderr=stderr, highlight=False, width=PIPED_WIDTH)
    console.print(table)

"""Hostile text on the terminal: names and server messages are printed literally.

Aliases, file names and server texts are not Rich markup and carry no terminal escape
sequences when printed: ``run[/2].bin`` stays as it is (instead of raising a markup
error that would end the batch), ``[/x]\\x1b]0;pwn\\x07`` loses its OSC sequence.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from ghga_connector import cli
from ghga_connector.errors import ServerResponseError
from ghga_connector.models import FileOutcome, Outcome
from ghga_connector.reporting.console import (
    JsonReporter,
    PlainReporter,
    QuietReporter,
    RichReporter,
    clean_text,
)

ALIAS = "run[/2].bin"
DETAIL = "[/x]\x1b]0;pwn\x07 [bold]\x1b[31mred\x1b[0m\x9b2J"
ESCAPES = ("\x1b]", "\x07", "\x9b", "\x1b[31m", "pwn")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ALIAS, ALIAS),
        ("[/x]\x1b]0;pwn\x07", "[/x]"),
        ("a\x1b[2Jb", "ab"),
        ("link\x1b]8;;http://x\x1b\\here\x1b]8;;\x1b\\", "linkhere"),
        ("tab\tnew\nline\r", "tab new line "),
        ("nul\x00del\x7fc1\x85", "nuldelc1"),
        ("ünï 数据", "ünï 数据"),
    ],
)
def test_clean_text(text: str, expected: str) -> None:
    assert clean_text(text) == expected


def _outcomes() -> list[FileOutcome]:
    return [
        FileOutcome(name=ALIAS, outcome=Outcome.DONE, size=10, seconds=1.0),
        FileOutcome(name="[red]x[/red].bam", outcome=Outcome.FAILED, message=DETAIL),
        FileOutcome(name="y\x1b]0;pwn\x07.bam", outcome=Outcome.UNVERIFIED, message=DETAIL),
        FileOutcome(name="[/]", outcome=Outcome.SKIPPED, message="[/]"),
    ]


def _check(output: str, terminal: bool = False) -> None:
    # on a terminal Rich writes its own colour codes; none may come from the text
    for escape in ESCAPES[:3] + ESCAPES[4:] if terminal else ESCAPES:
        assert escape not in output, (escape, output)
    assert ALIAS in output
    assert "[red]x[/red].bam" in output
    assert "[/x]" in output


@pytest.mark.parametrize("kind", [PlainReporter, QuietReporter, RichReporter])
def test_reporters_print_names_and_messages_literally(kind: type[PlainReporter]) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=kind is RichReporter, width=200)
    reporter = kind(console)
    if isinstance(reporter, RichReporter):
        reporter.progress.start()
    for outcome in _outcomes():
        reporter.file_started(outcome.name, 10)
        reporter.file_status(outcome.name, DETAIL)
        reporter.file_finished(outcome)
    reporter.message(f"{ALIAS}: {DETAIL}", level="warning")
    reporter.message(f"{ALIAS}: {DETAIL}", level="error")
    if isinstance(reporter, RichReporter):
        reporter.progress.stop()
    output = buffer.getvalue()
    if kind is QuietReporter:  # shows failures and errors only
        for escape in ESCAPES:
            assert escape not in output
        assert "[red]x[/red].bam" in output and "[/x]" in output
    else:
        _check(output, terminal=kind is RichReporter)


def test_json_reporter_messages_are_cleaned() -> None:
    buffer, out = io.StringIO(), io.StringIO()
    reporter = JsonReporter(Console(file=buffer), stdout=out)
    reporter.message(DETAIL, level="warning")
    reporter.file_finished(_outcomes()[1])
    for escape in ("\x1b]", "\x07", "pwn"):
        assert escape not in buffer.getvalue()
    assert "\\u001b" in out.getvalue()  # JSON escapes control characters itself


def test_summary_table_prints_names_literally(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli._summary(cli.GlobalOptions(), _outcomes(), "Upload")
    assert code == 1
    _check(capsys.readouterr().err)


def test_error_line_prints_server_detail_literally(capsys: pytest.CaptureFixture[str]) -> None:
    error = ServerResponseError(f"Unexpected answer HTTP 400: {DETAIL}", hint=f"hint {DETAIL}")
    cli._fail(cli.GlobalOptions(), error, 1)
    output = capsys.readouterr().err
    for escape in ESCAPES:
        assert escape not in output
    assert "Unexpected answer HTTP 400: [/x]" in output
    assert "hint [/x]" in output

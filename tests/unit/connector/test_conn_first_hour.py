"""A new user's first hour: what a newcomer meets before the first transfer works.

Retry notices, a WKVS that does not answer, the progress display's total row, a
reader that closes standard output, the passphrase variables and the ``error_code``
of ``--json`` failure records.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from ghga_connector import errors
from ghga_connector.adapters.retry import RetryTransport
from ghga_connector.errors import EXIT_BROKEN_PIPE, TokenError
from ghga_connector.inject import _say_where_while_waiting
from ghga_connector.models import FileOutcome, Outcome
from ghga_connector.prompts import passphrase_source, prompts_interactively
from ghga_connector.reporting.console import JsonReporter, PlainReporter, RichReporter
from ghga_connector.retrying import RetryNotice, RetryPolicy, RetryStats

ROOT = Path(__file__).resolve().parents[3]


class Recorder(PlainReporter):
    """Keeps the messages it is given."""

    def __init__(self) -> None:
        super().__init__(Console(file=io.StringIO()))
        self.lines: list[tuple[str, str]] = []

    def message(self, text: str, *, level: str = "info") -> None:
        self.lines.append((level, text))


async def _no_sleep(seconds: float) -> None:
    """Retries without waiting."""


async def test_a_retried_request_is_announced_with_attempt_k_of_n() -> None:
    answers = iter([503, 503, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers))

    reporter = Recorder()
    stats = RetryStats(listener=reporter.request_retried)
    transport = RetryTransport(
        httpx.MockTransport(handler), RetryPolicy(attempts=4), stats, sleep=_no_sleep
    )
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get("https://ucs.example.org/uploads/x?X-Amz-Signature=secret")
    assert response.status_code == 200
    texts = [text for level, text in reporter.lines if level == "warning"]
    assert len(texts) == 2
    assert texts[0].startswith("Retrying GET ucs.example.org/uploads/x (503)")
    assert texts[0].endswith("attempt 2 of 4")
    assert texts[1].endswith("attempt 3 of 4")
    assert all("Signature" not in text for text in texts)
    assert stats.by_reason == {"503": 2}


def test_json_output_has_retry_events() -> None:
    out = io.StringIO()
    reporter = JsonReporter(Console(file=io.StringIO()), stdout=out)
    reporter.request_retried(RetryNotice("PUT s3.example.org/b/k", 2, 5, "ReadTimeout", 1.25))
    (line,) = out.getvalue().splitlines()
    assert json.loads(line) == {
        "event": "retry",
        "request": "PUT s3.example.org/b/k",
        "attempt": 2,
        "attempts": 5,
        "reason": "ReadTimeout",
        "wait": 1.25,
    }


async def test_a_silent_wkvs_is_named_while_the_connector_waits() -> None:
    """The work ends only once the notice was given: no notice, no end (no timing)."""
    noticed = asyncio.Event()

    class Waiter(Recorder):
        def message(self, text: str, *, level: str = "info") -> None:
            super().message(text, level=level)
            noticed.set()

    async def work() -> str:
        await noticed.wait()
        return "values"

    reporter = Waiter()
    url = "https://data.ghga.de/.well-known"
    result = await asyncio.wait_for(
        _say_where_while_waiting(work(), reporter, url, after=0.0), timeout=60
    )
    assert result == "values"
    ((level, text),) = reporter.lines
    assert level == "warning" and url in text


async def test_a_quick_wkvs_gives_no_notice() -> None:
    async def work() -> str:
        return "values"

    reporter = Recorder()
    assert await _say_where_while_waiting(work(), reporter, "u", after=3600) == "values"
    assert reporter.lines == []


def test_the_total_row_has_no_markup_on_a_terminal() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    reporter = RichReporter(console)
    with reporter:
        reporter.file_started("a.bam", 10)
        reporter.file_started("b.bam", 10)
        reporter.advance("a.bam", 10)
        reporter.progress.refresh()
    text = screen.getvalue()
    assert "all files" in text
    assert "[bold]" not in text


def test_a_closed_stdout_ends_quietly_with_141(tmp_path: Path) -> None:
    """``ghga-connector config --json | head -0``: no 'Error: BrokenPipeError', exit 141."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHGA_CONNECTOR_")}
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the connector writes
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ghga_connector", "config", "--json"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == EXIT_BROKEN_PIPE == 141


@pytest.mark.parametrize("name", ["C4GH_PASSPHRASE", "GHGA_C4GH_PASSPHRASE"])
def test_both_passphrase_variables_are_read(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.delenv("C4GH_PASSPHRASE", raising=False)
    monkeypatch.delenv("GHGA_C4GH_PASSPHRASE", raising=False)
    monkeypatch.setenv(name, "s3cret")
    assert passphrase_source(Path("key.sec"), prompt=lambda _: "typed")() == "s3cret"
    assert not prompts_interactively()


def test_c4gh_passphrase_wins_over_the_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C4GH_PASSPHRASE", "first")
    monkeypatch.setenv("GHGA_C4GH_PASSPHRASE", "second")
    assert passphrase_source(Path("key.sec"))() == "first"


def _error_classes() -> list[type[errors.ConnectorError]]:
    return [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.ConnectorError)
    ]


def test_error_codes_are_unique_and_documented() -> None:
    codes = [cls.error_code for cls in _error_classes()]
    assert len(codes) == len(set(codes))
    guide = (ROOT / "docs" / "user-guide.md").read_text(encoding="utf-8")
    for code in [*codes, "transfer_failed", "internal"]:
        assert f"`{code}`" in guide, code


def test_a_failed_record_has_an_error_code() -> None:
    from ghga_connector.reporting.console import outcome_json

    error = TokenError("bad")
    failed = FileOutcome("a.bam", Outcome.FAILED, error_code=error.error_code)
    assert outcome_json(failed)["error_code"] == "token"
    other = FileOutcome("b.bam", Outcome.FAILED)
    assert outcome_json(other)["error_code"] == "transfer_failed"
    assert "error_code" not in outcome_json(FileOutcome("c.bam", Outcome.DONE))


@pytest.mark.parametrize(
    ("box_state", "hint"),
    [("archived", "ask the GHGA Data Steward for a new upload box"), ("locked", "to unlock")],
)
def test_a_refused_box_says_what_ghga_allows(box_state: str, hint: str) -> None:
    """An archived box is final (no unlock): the upload says so, as its dry run does."""
    from ghga_connector.adapters.responses import server_error
    from ghga_connector.errors import ARCHIVED_BOX_HINT

    body = {
        "exception_id": "boxStateError",
        "description": "Box state error",
        "data": {"box_id": "b", "box_state": box_state},
    }
    error = server_error(httpx.Response(409, json=body), "Creating the upload")
    assert f"is {box_state} and does not accept changes" in error.message
    assert hint in error.hint
    if box_state == "archived":
        assert error.hint == ARCHIVED_BOX_HINT
        assert "unlock the" not in error.hint

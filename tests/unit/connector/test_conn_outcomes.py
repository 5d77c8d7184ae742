"""core/outcomes.py: every FileOutcome of the batch code is built by one factory."""

from __future__ import annotations

from pathlib import Path

from tests.unit.connector.test_conn_handler import FakeReporter

from ghga_connector.core.outcomes import error_line, file_outcome
from ghga_connector.errors import StagingTimeoutError
from ghga_connector.models import Outcome


def test_an_error_gives_message_hint_and_error_code() -> None:
    error = StagingTimeoutError("GHGAF1 was not staged in time.", hint="Try again later.")
    outcome = file_outcome("GHGAF1", Outcome.FAILED, error=error, path=Path("x"))
    assert outcome.message == "GHGAF1 was not staged in time. Try again later."
    assert outcome.message == error_line(error)
    assert outcome.error_code == "staging_timeout"
    assert outcome.path == Path("x")


def test_without_hint_or_with_a_message_of_its_own() -> None:
    error = StagingTimeoutError("late.", hint="Try again later.")
    assert file_outcome("a", Outcome.FAILED, error=error, hint=False).message == "late."
    own = file_outcome("a", Outcome.FAILED, "checking failed", error=error)
    assert (own.message, own.error_code) == ("checking failed", "staging_timeout")
    assert file_outcome("a", Outcome.SKIPPED, "same").error_code == ""


def test_reported_once_when_asked() -> None:
    reporter = FakeReporter()
    outcome = file_outcome("a", Outcome.BUSY, "busy", size=3, details={"k": 1}, report=reporter)
    assert reporter.finished == [outcome]
    assert (outcome.size, outcome.details) == (3, {"k": 1})
    file_outcome("b", Outcome.DONE)
    assert reporter.finished == [outcome]

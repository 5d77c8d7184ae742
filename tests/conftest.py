"""Suite-wide rules: deterministic property tests, and in CI a skipped test is a failed test.

When the ``CI`` environment variable is set, every test that needs a real part (the
released 4.0.1 from PyPI, SeaweedFS, root for a small tmpfs, ...) must run: a skip is
reported as a failure with its reason. The one exception is the platform guard: tests
marked ``posix_only`` (signals, pseudo-terminals, POSIX permissions) are skipped on
Windows and tests marked ``linux_only`` (tmpfs) on every other system, where they
cannot run, in CI too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
from hypothesis import settings

# Deterministic property tests: a fixed seed, and no per-example deadline (a loaded
# machine, coverage or mutation tracing must not turn a slow example into a failure).
settings.register_profile("ghga", deadline=None, derandomize=True)
settings.load_profile("ghga")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "posix_only: needs POSIX signals, pseudo-terminals or permissions"
    )
    config.addinivalue_line("markers", "linux_only: needs Linux (tmpfs mounts)")


def _wrong_platform(item: pytest.Item) -> str | None:
    """Why ``item`` cannot run on this system, if it is platform-bound."""
    if os.name != "posix" and item.get_closest_marker("posix_only") is not None:
        return "needs POSIX (signals, pseudo-terminals or permissions)"
    if not sys.platform.startswith("linux") and item.get_closest_marker("linux_only"):
        return "needs Linux"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        reason = _wrong_platform(item)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not (report.skipped and _in_ci()) or hasattr(report, "wasxfail"):
        return
    if _wrong_platform(item) is not None:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped in CI, which counts as a failure: {reason}"

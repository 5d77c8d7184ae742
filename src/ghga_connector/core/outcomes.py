"""How a file's :class:`~ghga_connector.models.FileOutcome` is built: one factory.

Every outcome the batch code builds goes through :func:`file_outcome`, so an error's
message and hint become one line in one place (:func:`error_line`), and its
``error_code`` reaches the ``--json`` record the same way for every file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ghga_connector.core.ports import ProgressReporter
from ghga_connector.errors import ConnectorError
from ghga_connector.models import FileOutcome, Outcome

__all__ = ["error_line", "file_outcome"]

Details = Mapping[str, str | int | float | None]


def error_line(error: ConnectorError, *, hint: bool = True) -> str:
    """``error``'s message, followed by its hint (what to do) when ``hint`` and it has one."""
    return error.message + (f" {error.hint}" if hint and error.hint else "")


def file_outcome(
    name: str,
    outcome: Outcome,
    message: str = "",
    *,
    error: ConnectorError | None = None,
    hint: bool = True,
    path: Path | None = None,
    size: int = 0,
    seconds: float = 0.0,
    details: Details | None = None,
    report: ProgressReporter | None = None,
) -> FileOutcome:
    """The outcome of file ``name``, reported as finished if ``report`` is given.

    ``size`` is in bytes, ``seconds`` what it took, ``path`` where it is or would be. With ``error`` the message is :func:`error_line` of it (``hint=False``: its message
    only) unless ``message`` is given, and the outcome carries its ``error_code``.
    """
    result = FileOutcome(
        name=name,
        outcome=outcome,
        size=size,
        seconds=seconds,
        path=path,
        message=message or (error_line(error, hint=hint) if error is not None else ""),
        details=dict(details or {}),
        error_code=error.error_code if error is not None else "",
    )
    if report is not None:
        report.file_finished(result)
    return result

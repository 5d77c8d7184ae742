"""JSON lines for ``--json``: one object per line on standard output.

Per-file records of transfers are written by :class:`~ghga_connector.reporting.console.JsonReporter`
as files finish; this module writes the rows of the listing commands (``ls``, ``status``,
``config``) and the plan of a dry run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from typing import IO, Any

from ghga_connector.models import FileOutcome, Outcome
from ghga_connector.reporting.console import outcome_json

__all__ = ["write_json_lines", "write_planned"]


def write_json_lines(rows: Iterable[Mapping[str, Any]], stream: IO[str] | None = None) -> None:
    """Write each row as one JSON object per line (default: the current standard output)."""
    out = stream if stream is not None else sys.stdout
    for row in rows:
        out.write(json.dumps(row) + "\n")


def write_planned(outcomes: Iterable[FileOutcome], stream: IO[str] | None = None) -> None:
    """Write the rows of a dry run's plan (they were not reported as finished files)."""
    write_json_lines((outcome_json(o) for o in outcomes if o.outcome is Outcome.PLANNED), stream)

"""ghga_sandbox/help.py: the sandbox's help reads as prose, without ghga_connector."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ghga_sandbox.cli import app
from ghga_sandbox.help import as_prose


@pytest.mark.parametrize("command", [[], ["serve"], ["faults"], ["archive"], ["status"]])
def test_help_has_no_type_placeholders(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output


def test_paragraphs_become_one_line_examples_keep_their_breaks() -> None:
    text = "One paragraph\nover two lines.\n\nExample:\n  ghga-sandbox serve\n  ghga-sandbox status"
    assert as_prose(text) == (
        "One paragraph over two lines.\n\nExample:\n  ghga-sandbox serve\n  ghga-sandbox status"
    )
    assert as_prose("\b\nkept\nas is") == "\b\nkept\nas is"
    assert as_prose(None) is None

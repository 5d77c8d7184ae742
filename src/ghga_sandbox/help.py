"""Help text of ``ghga-sandbox`` that reads as prose.

:class:`ProseHelpGroup` joins the lines of each help paragraph (they wrap at the
terminal edge, not at the source line breaks) and leaves flags without a type
placeholder (``<bool>``). The sandbox keeps its own copy so that it never imports the
connector (an import-linter contract in pyproject.toml).
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup

__all__ = ["ProseHelpGroup", "as_prose"]


def as_prose(text: str | None) -> str | None:
    r"""``text`` with each paragraph on one line; examples (indented) and ``\b`` blocks kept."""
    if not text:
        return text
    kept = []
    for block in text.split("\n\n"):
        rows = block.split("\n")
        verbatim = block.startswith("\b") or any(row.startswith("  ") for row in rows[1:])
        kept.append(block if verbatim else " ".join(row.strip() for row in rows))
    return "\n\n".join(kept)


def _prose(command: Any) -> Any:
    if not getattr(command, "_sandbox_prose", False):
        command.help = as_prose(command.help)
        for param in command.params:
            flag = getattr(param, "param_type_name", "") == "option" and param.is_flag
            if flag and param.metavar is None:
                param.metavar = ""
        help_option = command.get_help_option

        def get_help_option(ctx: Any) -> Any:
            option = help_option(ctx)
            if option is not None and option.metavar is None:
                option.metavar = ""  # not "<bool>" beside --help either
            return option

        command.get_help_option = get_help_option
        command._sandbox_prose = True
    return command


class ProseHelpGroup(TyperGroup):
    """A Typer group whose help and whose commands' help read as prose."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The command, its help turned into prose once."""
        command = super().get_command(ctx, cmd_name)
        return None if command is None else _prose(command)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """The group's own help, as prose."""
        _prose(self)
        super().format_help(ctx, formatter)

"""Command-line conveniences of ``ghga-connector`` (``ghga-sandbox`` has its own, in ``ghga_sandbox.help``).

* :class:`TidyHelpGroup`: help text without type placeholders on flags (``<bool>``),
  with paragraphs that wrap at the terminal edge instead of at the source line breaks;
* :class:`GlobalOptionsGroup`: also accepts the global options (``--json``, ``--quiet``,
  ``--debug``, ``--config PATH``) after the command name, as in
  ``ghga-connector ls --json``.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup

__all__ = ["GlobalOptionsGroup", "TidyHelpGroup", "reflow"]


def reflow(text: str | None) -> str | None:
    r"""Join the lines of each paragraph (paragraphs are separated by a blank line).

    Lines indented by two or more spaces (examples) and paragraphs starting with
    ``\\b`` keep their line breaks.
    """
    if not text:
        return text
    paragraphs = []
    for paragraph in text.split("\n\n"):
        lines = paragraph.split("\n")
        if paragraph.startswith("\b") or any(line.startswith("  ") for line in lines[1:]):
            paragraphs.append(paragraph)
        else:
            paragraphs.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs)


def _is_option(param: Any) -> bool:
    """Whether a click parameter is an option (typer may vendor its own click)."""
    return getattr(param, "param_type_name", "") == "option"


def _tidy(command: Any) -> Any:
    if getattr(command, "_ghga_tidy", False):
        return command
    command.help = reflow(command.help)
    for param in command.params:
        if _is_option(param) and param.is_flag and param.metavar is None:
            param.metavar = ""  # typer would show "<bool>"
        elif (
            getattr(param, "param_type_name", "") == "argument"
            and param.metavar
            and hasattr(param, "display_type_rich")
        ):
            # the metavar (e.g. FILE...) says it all; typer would add "<list[Path]>"
            param.display_type_rich = lambda ctx: None
    original = command.get_help_option

    def get_help_option(ctx: Any) -> Any:
        option = original(ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option
    command._ghga_tidy = True
    return command


class TidyHelpGroup(TyperGroup):
    """A Typer group whose commands' help reads as prose (see the module docstring)."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The command, its help tidied once."""
        command = super().get_command(ctx, cmd_name)
        return _tidy(command) if command is not None else None

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """The group's own help, tidied."""
        _tidy(self)
        super().format_help(ctx, formatter)


#: Global options that may also follow the command name: name → takes a value.
GLOBAL_OPTIONS = {
    "--json": False,
    "--quiet": False,
    "-q": False,
    "--debug": False,
    "--config": True,
}


#: Added to every command's help: the global options work after the command too.
GLOBAL_OPTIONS_HELP = (
    "Global options, before or after the command: --json (one JSON object per file on "
    "standard output), --quiet/-q (errors only), --debug, --config PATH."
)


class GlobalOptionsGroup(TidyHelpGroup):
    """Moves global options given after the command name in front of it.

    Only options that the command itself does not define are moved, and nothing after
    a ``--`` separator; the values of the command's own options are left alone. Every
    command's help ends with :data:`GLOBAL_OPTIONS_HELP`.
    """

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The command, its help ending with the global options."""
        command = super().get_command(ctx, cmd_name)
        if command is not None and GLOBAL_OPTIONS_HELP not in (command.epilog or ""):
            epilog = command.epilog
            command.epilog = f"{epilog}\n\n{GLOBAL_OPTIONS_HELP}" if epilog else GLOBAL_OPTIONS_HELP
        return command

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Reorder ``args`` (see the class docstring), then parse as usual."""
        return super().parse_args(ctx, self._hoist(ctx, list(args)))

    def _hoist(self, ctx: Any, args: list[str]) -> list[str]:
        position = self._command_position(args)
        if position is None:
            return args
        command = super().get_command(ctx, args[position])
        if command is None:
            return args
        own: dict[str, bool] = {}
        for param in command.params:
            if _is_option(param):
                for name in (*param.opts, *param.secondary_opts):
                    own[name] = not param.is_flag and not param.count
        moved: list[str] = []
        kept: list[str] = []
        rest = args[position + 1 :]
        index = 0
        while index < len(rest):
            arg = rest[index]
            if arg == "--":
                kept.extend(rest[index:])
                break
            name, _, inline = arg.partition("=")
            if name in own:
                kept.append(arg)
                if own[name] and not inline and index + 1 < len(rest):
                    kept.append(rest[index + 1])
                    index += 1
            elif name in GLOBAL_OPTIONS:
                moved.append(arg)
                if GLOBAL_OPTIONS[name] and not inline and index + 1 < len(rest):
                    moved.append(rest[index + 1])
                    index += 1
            else:
                kept.append(arg)
            index += 1
        return [*args[:position], *moved, args[position], *kept]

    def _command_position(self, args: list[str]) -> int | None:
        """Index of the command name in ``args`` (skipping the group's own options)."""
        takes_value = {
            name
            for param in self.params
            if _is_option(param) and not getattr(param, "is_flag", False)
            for name in param.opts
        }
        index = 0
        while index < len(args):
            arg = args[index]
            if arg == "--":
                return None
            if arg.startswith("-"):
                if arg in takes_value:
                    index += 1
                index += 1
                continue
            return index if arg in self.commands else None
        return None

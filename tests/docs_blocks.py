"""The command blocks of README.md and docs/*.md, for the tests that run them as written.

A *command block* is a fenced block marked ``bash``, ``sh``, ``shell`` or ``console``, or
an unmarked one whose first line that is not a comment starts with a command a user
types (``ghga-connector``, ``ghga-sandbox``, ``pip``, ``snakemake``, ``sbatch`` …).
Every command block is run by ``tests/integration/test_docs_commands.py`` exactly as
written, unless the line right before its opening fence is

    <!-- docs-test: skip REASON -->

(REASON says why, e.g. "needs samtools" or which other test runs it). That marker is
the only way to keep a block from being run; docs/user-guide.md mentions it for writers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
COMMAND_WORDS = (
    "ghga-connector",
    "ghga-sandbox",
    "pip",
    "python",
    "python3",
    "make",
    "snakemake",
    "sbatch",
    "nextflow",
    "mkdir",
    "cd",
    "export",
    "printf",
    "crypt4gh-keygen",
    "pytest",
    "GHGA_",
)
SKIP = re.compile(r"<!-- docs-test: skip (?P<reason>\S.*?) -->")
FENCE = re.compile(r"^```(?P<language>[\w-]*)\s*$")


@dataclass(frozen=True)
class Block:
    """One command block: where it is, its text, and why it is not run (if it is not)."""

    document: Path
    line: int  # of the opening fence, 1-based
    text: str
    skip_reason: str | None

    @property
    def name(self) -> str:
        """``README.md:55``: the block's place, as test ids show it."""
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def _is_command(language: str, text: str) -> bool:
    if language in SHELL_LANGUAGES:
        return True
    if language:
        return False
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = next((line for line in lines if not line.startswith("#")), "")
    return first.startswith(COMMAND_WORDS)


def command_blocks(document: Path) -> list[Block]:
    """The command blocks of ``document``, in order."""
    lines = document.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        text = "\n".join(lines[index + 1 : end]) + "\n"
        if _is_command(match["language"], text):
            marker = SKIP.fullmatch(lines[index - 1].strip()) if index else None
            reason = marker["reason"] if marker else None
            blocks.append(Block(document, index + 1, text, reason))
        index = end + 1
    return blocks


def all_blocks() -> list[Block]:
    """The command blocks of every document."""
    return [block for document in DOCUMENTS for block in command_blocks(document)]

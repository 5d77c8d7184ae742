"""The command blocks of the documentation: found, and either run or marked with a reason.

``tests/integration/test_docs_commands.py`` runs every block that is not marked; these
checks keep the marker honest and the known traps out of the copy-paste lines.
"""

from __future__ import annotations

from tests.docs_blocks import ROOT, all_blocks, command_blocks


def test_blocks_are_found_and_most_are_run() -> None:
    blocks = all_blocks()
    run = [block for block in blocks if block.skip_reason is None]
    assert len(run) >= 8, [block.name for block in run]
    for block in blocks:
        assert block.skip_reason is None or len(block.skip_reason) > 10, block.name


def test_snakemake_lines_name_the_snakefile_and_put_the_target_first() -> None:
    lines = [
        line
        for block in command_blocks(ROOT / "docs" / "hpc.md")
        for line in block.text.splitlines()
        if line.startswith("snakemake")
    ]
    assert len(lines) == 2
    for line in lines:
        assert " -s examples/snakemake/Snakefile " in line
        before, _, after = line.partition("--config")
        assert before.split()[-1] in {"uploaded", "downloaded"}
        assert all("=" in word for word in after.split())


def test_install_lines_install_this_repository() -> None:
    for block in all_blocks():
        for line in block.text.splitlines():
            if "pip install" in line:
                assert "'.[sandbox]'" in line or "seaweedfs" in line, (block.name, line)

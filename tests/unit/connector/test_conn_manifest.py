"""manifest.py: TSV parsing and local checks of the files to upload."""

from __future__ import annotations

from pathlib import Path

import pytest

from ghga_connector.errors import InputFileError
from ghga_connector.manifest import (
    CRYPT4GH_MAGIC,
    check_upload_file,
    parse_manifest,
    plan_uploads,
)


def _manifest(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "files.tsv"
    path.write_text(text, encoding="utf-8")
    return path


def test_parse_good_manifest(tmp_path: Path) -> None:
    path = _manifest(tmp_path, "a.bam\tsample_a.bam\n\n  \nsub/b.vcf\tb.vcf\textra column\n")
    assert parse_manifest(path) == [
        (Path("a.bam"), "sample_a.bam"),
        (Path("sub/b.vcf"), "b.vcf"),
    ]


def test_line_without_tab_hints_at_spaces(tmp_path: Path) -> None:
    path = _manifest(tmp_path, "a.bam\ta\nb.bam    b\n")
    with pytest.raises(InputFileError) as info:
        parse_manifest(path)
    assert "Line 2" in info.value.message
    assert "no tab" in info.value.message
    assert "spaces" in info.value.message
    assert info.value.exit_code == 2


def test_line_without_tab_or_spaces(tmp_path: Path) -> None:
    with pytest.raises(InputFileError) as info:
        parse_manifest(_manifest(tmp_path, "lonely.bam\n"))
    assert "Line 1" in info.value.message
    assert "spaces" not in info.value.message


@pytest.mark.parametrize("line", ["\talias", "path\t", "path\t  \tmore", " \talias"])
def test_empty_field(tmp_path: Path, line: str) -> None:
    with pytest.raises(InputFileError, match="empty path or alias"):
        parse_manifest(_manifest(tmp_path, line + "\n"))


@pytest.mark.parametrize("text", ["", "\n\n", "   \n\t\n"])
def test_no_entries(tmp_path: Path, text: str) -> None:
    # a line of only whitespace (including a lone tab) counts as blank
    with pytest.raises(InputFileError, match="lists no files"):
        parse_manifest(_manifest(tmp_path, text))


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="cannot be read"):
        parse_manifest(tmp_path / "nope.tsv")


def test_manifest_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.tsv"
    path.write_bytes("caf\xe9.bam\tcafe\n".encode("latin-1"))
    with pytest.raises(InputFileError):
        parse_manifest(path)


# --- check_upload_file ---------------------------------------------------------------


def test_check_good_file(tmp_path: Path) -> None:
    path = tmp_path / "a.bam"
    path.write_bytes(b"x" * 1234)
    assert check_upload_file(path) == 1234


def test_check_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="does not exist"):
        check_upload_file(tmp_path / "nope.bam")


def test_check_directory_hints_at_manifest_or_glob(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="is a folder") as info:
        check_upload_file(tmp_path)
    assert "--manifest" in info.value.hint
    assert f"{tmp_path}/*.bam" in info.value.hint


def test_check_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.bam"
    path.touch()
    with pytest.raises(InputFileError, match="empty"):
        check_upload_file(path)


def test_check_crypt4gh_file(tmp_path: Path) -> None:
    path = tmp_path / "enc.c4gh"
    path.write_bytes(CRYPT4GH_MAGIC + b"\x01\x00\x00\x00" + b"x" * 200)
    with pytest.raises(InputFileError, match="already Crypt4GH") as info:
        check_upload_file(path)
    assert info.value.hint


def test_check_short_file_starting_like_magic(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(b"crypt4gh")  # only the magic word, no version: not Crypt4GH
    assert check_upload_file(path) == 8


# --- plan_uploads --------------------------------------------------------------------


def _files(tmp_path: Path, *names: str) -> list[Path]:
    paths = []
    for name in names:
        path = tmp_path / name
        path.write_bytes(name.encode())
        paths.append(path)
    return paths


def test_plan_uploads(tmp_path: Path) -> None:
    a, b = _files(tmp_path, "a.bam", "b.bam")
    jobs = plan_uploads([(a, "A"), (b, "B")], overwrite=True)
    assert [(j.path, j.alias, j.size, j.overwrite) for j in jobs] == [
        (a, "A", 5, True),
        (b, "B", 5, True),
    ]


def test_duplicate_alias(tmp_path: Path) -> None:
    a, b = _files(tmp_path, "a.bam", "b.bam")
    with pytest.raises(InputFileError, match="alias 'same' is used twice"):
        plan_uploads([(a, "same"), (b, "same")], overwrite=False)


def test_duplicate_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (a,) = _files(tmp_path, "a.bam")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputFileError, match="listed twice"):
        plan_uploads([(a, "one"), (Path("./a.bam"), "two")], overwrite=False)


def test_plan_checks_every_file(tmp_path: Path) -> None:
    (a,) = _files(tmp_path, "a.bam")
    with pytest.raises(InputFileError, match="does not exist"):
        plan_uploads([(a, "a"), (tmp_path / "missing", "m")], overwrite=False)

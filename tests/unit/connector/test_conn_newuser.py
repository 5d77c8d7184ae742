"""A new user's first hour (issue 16): messages, defaults and help, through CliRunner.

Offline only: where a command would go on to the network, it is pointed at a closed
loopback port with a single attempt.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
from crypt4gh.keys import c4gh, get_public_key
from nacl.public import PublicKey, SealedBox
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from ghga_connector.cli import _config_origin, app
from ghga_connector.config import Config
from ghga_connector.reporting.console import print_table

#: A loopback port nothing listens on, and one attempt per request.
CLOSED_URL = "http://127.0.0.1:9/.well-known"


@pytest.fixture
def runner(clean_env: Path) -> CliRunner:
    return CliRunner()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    """Network commands fail fast: a closed local port, one attempt."""
    monkeypatch.setenv("GHGA_CONNECTOR_WKVS_API_URL", CLOSED_URL)
    monkeypatch.setenv("GHGA_CONNECTOR_CLIENT_NUM_RETRIES", "1")
    monkeypatch.setenv("GHGA_CONNECTOR_STATE_DIR", str(clean_env / "state"))


def _keys(folder: Path, public: str = "key.pub", private: str = "key.sec") -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    c4gh.generate(str(folder / private), str(folder / public), passphrase=b"", comment=b"")
    (folder / private).chmod(0o600)
    return folder / public, folder / private


def _wpat(public_key_file: Path) -> str:
    public = get_public_key(str(public_key_file))
    sealed = SealedBox(PublicKey(public)).encrypt(b"A" * 24)
    return f"{uuid.uuid4()}:{base64.b64encode(sealed).decode()}"


def _token_file(text: str, name: str = "upload.wpat", mode: int = 0o600) -> Path:
    path = Path(name)
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def _no_traceback(result: object) -> None:
    assert "Traceback" not in result.output  # type: ignore[attr-defined]


# --- 2: key discovery ----------------------------------------------------------------


def test_keys_from_crypt4gh_keygen_default_folder(runner: CliRunner, offline: None) -> None:
    public, _ = _keys(Path.home() / ".c4gh", "key.pub", "key")
    token = _token_file(_wpat(public))
    result = runner.invoke(app, ["ls", "--wpat-file", str(token)])
    # the keys were found and opened the token: the run got as far as the network
    assert result.exit_code == 1, result.output
    assert "Could not reach" in result.stderr
    _no_traceback(result)


def test_keys_from_the_configuration_file(runner: CliRunner, offline: None) -> None:
    public, private = _keys(Path("mine"), "user.pub", "user.sec")
    Path(".ghga_connector.yaml").write_text(
        f"my_public_key_path: {public.resolve()}\nmy_private_key_path: {private.resolve()}\n"
    )
    _keys(Path.home() / ".c4gh", "key.pub", "key")  # another pair, lower in the chain
    token = _token_file(_wpat(public))
    result = runner.invoke(app, ["ls", "--wpat-file", str(token)])
    assert result.exit_code == 1, result.output
    assert "Could not reach" in result.stderr


def test_key_variables_beat_the_configuration_file(
    runner: CliRunner, offline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path(".ghga_connector.yaml").write_text("my_public_key_path: from-file.pub\n")
    monkeypatch.setenv("GHGA_CONNECTOR_MY_PUBLIC_KEY_PATH", "from-env.pub")
    _keys(Path("."))
    result = runner.invoke(app, ["ls", "--wpat", "x"])
    assert result.exit_code == 2
    assert "from-env.pub" in result.stderr
    assert "does not exist" in result.stderr


def test_option_beats_everything(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHGA_CONNECTOR_MY_PUBLIC_KEY_PATH", "from-env.pub")
    result = runner.invoke(app, ["ls", "--wpat", "x", "--my-public-key-path", "option.pub"])
    assert result.exit_code == 2
    assert "option.pub" in result.stderr


def test_current_folder_key_pair_is_the_last_resort(runner: CliRunner, offline: None) -> None:
    public, _ = _keys(Path("."))
    token = _token_file(_wpat(public))
    result = runner.invoke(app, ["ls", "--wpat-file", str(token)])
    assert result.exit_code == 1, result.output
    assert "Could not reach" in result.stderr


def test_missing_key_names_the_options(runner: CliRunner) -> None:
    result = runner.invoke(app, ["ls", "--wpat", "x"])
    assert result.exit_code == 2
    _no_traceback(result)
    assert "key.pub" in result.stderr
    assert "--my-public-key-path" in result.stderr
    assert "--my-private-key-path" in result.stderr


def test_help_shows_the_key_chain(runner: CliRunner) -> None:
    result = runner.invoke(app, ["upload", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "GHGA_CONNECTOR_MY_PUBLIC_KEY_PATH" in text
    assert "~/.c4gh/key.pub" in text
    assert "~/.c4gh/key," in text
    assert "./key.sec" in text


# --- 5: which configuration is in force --------------------------------------------------


def test_config_origin_without_a_file_names_production() -> None:
    origin = _config_origin(Config(), None)
    assert origin == (
        "no .ghga_connector.yaml here or in ~/; using GHGA production "
        "(https://data.ghga.de/.well-known)"
    )


def test_unreachable_service_says_which_configuration(runner: CliRunner, offline: None) -> None:
    public, _ = _keys(Path("."))
    token = _token_file(_wpat(public))
    result = runner.invoke(app, ["ls", "--wpat-file", str(token)])
    assert result.exit_code == 1
    assert "Configuration: no .ghga_connector.yaml here or in ~/" in result.stderr
    assert CLOSED_URL in result.stderr


def test_debug_says_which_configuration_first(runner: CliRunner, offline: None) -> None:
    public, _ = _keys(Path("."))
    token = _token_file(_wpat(public))
    Path(".ghga_connector.yaml").write_text("max_wait_time: 5\n")
    result = runner.invoke(app, ["--debug", "ls", "--wpat-file", str(token)])
    assert result.exit_code == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith("Configuration: ")
    assert ".ghga_connector.yaml (wkvs_api_url" in first


# --- 6: unknown settings ----------------------------------------------------------------


def test_unknown_setting_is_a_configuration_error(runner: CliRunner) -> None:
    Path(".ghga_connector.yaml").write_text("wkvs_url: http://127.0.0.1:8080/.well-known\n")
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 2
    _no_traceback(result)
    assert "Unknown setting 'wkvs_url'" in result.stderr
    assert "did you mean 'wkvs_api_url'?" in result.stderr


# --- 7: global options after the command ------------------------------------------------


def test_json_after_the_command(runner: CliRunner) -> None:
    result = runner.invoke(app, ["config", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {row["setting"] for row in rows} >= {"wkvs_api_url", "part_size"}


def test_global_options_after_ls_are_accepted(runner: CliRunner) -> None:
    result = runner.invoke(app, ["ls", "--json", "--quiet", "--config", "missing.yaml"])
    assert result.exit_code == 2
    assert "No such option" not in result.output
    assert "missing.yaml" in result.stderr


def test_status_json_after_the_command(runner: CliRunner, offline: None) -> None:
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


def test_option_values_are_not_taken_for_global_options(runner: CliRunner) -> None:
    # '--json' here is the value of --alias, not the global option
    Path("a.bam").write_bytes(b"a")
    result = runner.invoke(app, ["upload", "--alias", "--json", "a.bam", "--dry-run"])
    assert "No such option" not in result.output
    assert result.stdout == ""  # no JSON records: --json was not taken as global


# --- 8: token on standard input -----------------------------------------------------------


def test_token_piped_on_standard_input(runner: CliRunner, offline: None) -> None:
    public, _ = _keys(Path("."))
    result = runner.invoke(app, ["ls"], input=_wpat(public) + "\n")
    assert result.exit_code == 1, result.output
    assert "No access token given" not in result.stderr
    assert "Could not reach" in result.stderr


def test_wpat_file_dash_reads_standard_input(runner: CliRunner, offline: None) -> None:
    public, _ = _keys(Path("."))
    result = runner.invoke(app, ["ls", "--wpat-file", "-"], input=_wpat(public) + "\n")
    assert result.exit_code == 1, result.output
    assert "Could not reach" in result.stderr


def test_wpat_file_dash_with_nothing_piped(runner: CliRunner) -> None:
    _keys(Path("."))
    result = runner.invoke(app, ["ls", "--wpat-file", "-"], input="")
    assert result.exit_code == 2
    assert "nothing came on standard input" in result.stderr


# --- 9: damaged tokens ------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["cut", "wrapped"])
def test_damaged_token_says_copy_it_again(runner: CliRunner, damage: str) -> None:
    public, _ = _keys(Path("."))
    text = _wpat(public)
    text = text[:-5] if damage == "cut" else text[:80] + "\n" + text[80:]
    token = _token_file(text)
    result = runner.invoke(app, ["ls", "--wpat-file", str(token)])
    assert result.exit_code == 2
    _no_traceback(result)
    assert "incomplete or damaged" in result.stderr
    assert "expected 133" in result.stderr
    assert "copy it again" in result.stderr
    assert "not issued for your key pair" not in result.stderr


# --- 10: token sources ------------------------------------------------------------------


def test_wpat_and_wpat_file_together(runner: CliRunner) -> None:
    token = _token_file("x:y")
    result = runner.invoke(app, ["ls", "--wpat", "x:y", "--wpat-file", str(token)])
    assert result.exit_code == 2
    assert "not both" in result.stderr


def test_missing_token_file_has_no_errno(runner: CliRunner) -> None:
    _keys(Path("."))
    result = runner.invoke(app, ["ls", "--wpat-file", "nope.wpat"])
    assert result.exit_code == 2
    assert "The token file 'nope.wpat' does not exist." in result.stderr
    assert "Errno" not in result.stderr


@pytest.mark.posix_only  # the permission check is POSIX-only
def test_token_file_readable_by_others_warns(runner: CliRunner, offline: None) -> None:
    public, _ = _keys(Path("."))
    token = _token_file(_wpat(public), mode=0o644)
    result = runner.invoke(app, ["ls", "--wpat-file", str(token)])
    assert "readable by other users" in result.stderr
    assert "chmod 600 upload.wpat" in result.stderr
    token.chmod(0o600)
    again = runner.invoke(app, ["ls", "--wpat-file", str(token)])
    assert "readable by other users" not in again.stderr


# --- 11: tables never cut values ----------------------------------------------------------


def test_table_folds_long_values_on_an_80_column_terminal() -> None:
    value = "GHGAF" + "0123456789" * 9
    table = Table()
    for column in ("accession", "file", "size", "staged"):
        table.add_column(column)
    table.add_row(value, value + ".bam.c4gh", "1,234,567", "True")
    console = Console(width=80, force_terminal=True, record=True, color_system=None)
    print_table(table, console=console)
    text = console.export_text()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    cells = "".join(line.split("│")[1].strip() for line in text.splitlines() if "│" in line)
    assert value in cells


def test_piped_table_keeps_every_value_on_one_line(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = Path("a-rather-long-folder-name-" + "x" * 60) / ("and-another-one-" + "y" * 40)
    deep.mkdir(parents=True)
    config = deep / "connector.yaml"
    config.write_text("max_wait_time: 17\n")
    result = runner.invoke(app, ["--config", str(config), "config"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert any(str(config) in line for line in result.stdout.splitlines())
    assert "…" not in result.stdout


# --- 17: aliases ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "message"),
    [("", "must not be empty"), (" a.bam", "white space"), ("a\tb", "control characters")],
)
def test_bad_alias_is_a_usage_error_before_any_upload(
    runner: CliRunner, alias: str, message: str
) -> None:
    Path("a.bam").write_bytes(b"a")
    result = runner.invoke(app, ["upload", "--alias", alias, "a.bam"])
    assert result.exit_code == 2
    _no_traceback(result)
    assert message in result.stderr


# --- 18: help -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["upload", "download", "ls", "delete", "decrypt"])
def test_help_has_no_type_placeholders(runner: CliRunner, command: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0
    assert "<bool>" not in result.output
    assert "<list[" not in result.output
    assert "``" not in result.output


def test_help_names_list_arguments(runner: CliRunner) -> None:
    upload = runner.invoke(app, ["upload", "--help"], env={"COLUMNS": "120"}).output
    assert "FILE..." in upload
    download = " ".join(
        runner.invoke(app, ["download", "--help"], env={"COLUMNS": "120"}).output.split()
    )
    assert "ACCESSION" in download
    assert "'ghga-connector ls'" in download


def test_help_paragraphs_are_not_broken_mid_sentence(runner: CliRunner) -> None:
    result = runner.invoke(app, ["upload", "--help"], env={"COLUMNS": "200"})
    assert (
        "Files are encrypted while they are read (no encrypted copy on disk) and sent in "
        "parallel parts." in result.output
    )


def test_sandbox_accepts_dash_h() -> None:
    from ghga_sandbox.cli import app as sandbox_app

    result = CliRunner().invoke(sandbox_app, ["-h"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "serve" in result.output
    archive = CliRunner().invoke(sandbox_app, ["archive", "-h"], env={"COLUMNS": "120"})
    assert archive.exit_code == 0
    assert "``" not in archive.output
    assert "<bool>" not in archive.output


# --- 19: messages -------------------------------------------------------------------------


def test_swapped_key_options(runner: CliRunner) -> None:
    _keys(Path("."))
    result = runner.invoke(
        app,
        [
            "ls",
            "--wpat",
            "x",
            "--my-public-key-path",
            "key.sec",
            "--my-private-key-path",
            "key.pub",
        ],
    )
    assert result.exit_code == 2
    _no_traceback(result)
    assert "did you swap --my-public-key-path and --my-private-key-path?" in result.stderr.replace(
        "Did", "did"
    )


def test_swapped_private_key_in_decrypt(runner: CliRunner) -> None:
    _keys(Path("."))
    Path("data").mkdir()
    Path("data/x.c4gh").write_bytes(b"x")
    result = runner.invoke(
        app, ["decrypt", "--input-dir", "data", "--my-private-key-path", "key.pub"]
    )
    assert result.exit_code == 2
    assert "holds a public key" in result.stderr
    assert "swap" in result.stderr


_OPEN_FOREIGN_ENVELOPE = """
import os, sys
if sys.argv[1] == "cli":
    import ghga_connector.cli
from nacl.public import PrivateKey
from ghga_connector.c4gh.envelope import EnvelopeError, make_envelope, open_envelope
mine, other = PrivateKey.generate(), PrivateKey.generate()
envelope = make_envelope(os.urandom(32), bytes(mine), bytes(other.public_key))
try:
    open_envelope(envelope, bytes(mine))
except EnvelopeError:
    print("refused")
"""


@pytest.mark.parametrize("with_cli", [True, False])
def test_crypt4gh_log_lines_are_not_printed(tmp_path: Path, with_cli: bool) -> None:
    """A download envelope for another key: the connector's error only, no crypt4gh log.

    In a subprocess, as the command runs (pytest's own log handlers would hide the
    difference); without the CLI's logging set-up crypt4gh's line does appear.
    """
    import subprocess
    import sys

    script = tmp_path / "open.py"
    script.write_text(_OPEN_FOREIGN_ENVELOPE)
    done = subprocess.run(
        [sys.executable, str(script), "cli" if with_cli else "library"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.strip() == "refused"
    if with_cli:
        assert done.stderr == ""
    else:
        assert "X25519 Packet Decryption failed" in done.stderr


def test_folder_argument_hints_at_manifest_or_glob(runner: CliRunner) -> None:
    Path("run1").mkdir()
    result = runner.invoke(app, ["upload", "run1"])
    assert result.exit_code == 2
    assert "'run1' is a folder" in result.stderr
    assert "run1/*.bam" in result.stderr
    assert "--manifest" in result.stderr


def test_alias_used_twice_names_both_paths(runner: CliRunner) -> None:
    Path("a").mkdir()
    Path("b").mkdir()
    Path("a/x.bam").write_bytes(b"a")
    Path("b/x.bam").write_bytes(b"b")
    result = runner.invoke(app, ["upload", "a/x.bam", "b/x.bam"])
    assert result.exit_code == 2
    text = " ".join(result.stderr.split())
    assert "'x.bam' is used twice: for 'a/x.bam' and 'b/x.bam'" in text


def test_manifest_problem_names_its_line(runner: CliRunner) -> None:
    Path("a.bam").write_bytes(b"a")
    Path("files.tsv").write_text("path\talias\na.bam\ta\nmissing.bam\tm\n")
    result = runner.invoke(app, ["upload", "--manifest", "files.tsv"])
    assert result.exit_code == 2
    text = " ".join(result.stderr.split())
    assert "Line 3 of 'files.tsv': The file 'missing.bam' does not exist." in text


def test_manifest_header_row_is_skipped(runner: CliRunner) -> None:
    from ghga_connector.manifest import parse_manifest

    Path("files.tsv").write_text("path\talias\na.bam\ta\n")
    assert parse_manifest(Path("files.tsv")) == [(Path("a.bam"), "a")]
    # a first line that names a file is data, not a header
    Path("path").write_bytes(b"x")
    assert parse_manifest(Path("files.tsv"))[0] == (Path("path"), "alias")


def test_manifest_alias_twice_names_both_lines(runner: CliRunner) -> None:
    from ghga_connector.errors import InputFileError
    from ghga_connector.manifest import parse_manifest

    Path("files.tsv").write_text("a.bam\tx\nb.bam\tx\n")
    with pytest.raises(InputFileError) as info:
        parse_manifest(Path("files.tsv"))
    assert "Line 2" in info.value.message
    assert "'a.bam' (line 1) and 'b.bam'" in info.value.message

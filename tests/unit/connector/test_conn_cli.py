"""cli.py through typer's CliRunner: offline paths only (no network)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from crypt4gh.keys import c4gh
from typer.testing import CliRunner

from ghga_connector import __version__
from ghga_connector.cli import app
from ghga_connector.manifest import CRYPT4GH_MAGIC

COMMANDS = ["upload", "batch-upload", "download", "decrypt", "ls", "delete", "status", "config"]


@pytest.fixture
def runner(clean_env: Path) -> CliRunner:
    """A runner in an empty working folder with no connector settings in the environment."""
    return CliRunner()


@pytest.fixture
def key_files(clean_env: Path) -> tuple[Path, Path]:
    c4gh.generate("key.sec", "key.pub", passphrase=b"", comment=b"")
    return Path("key.pub"), Path("key.sec")


def _no_traceback(result: object) -> None:
    output = result.output  # type: ignore[attr-defined]
    assert "Traceback" not in output


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"ghga-connector {__version__}"


def test_no_arguments_shows_help(runner: CliRunner) -> None:
    result = runner.invoke(app, [])
    assert result.exit_code in (0, 2)  # click's no_args_is_help exits 2 since click 8.2
    assert "upload" in result.output


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help(runner: CliRunner, command: str | None) -> None:
    result = runner.invoke(app, [command, "--help"] if command else ["--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_help_with_broken_configuration(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setenv("GHGA_CONNECTOR_CONFIG_YAML", "/nonexistent/config.yaml")
    monkeypatch.setenv("GHGA_CONNECTOR_PART_SIZE", "not a number")
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output


def test_upload_missing_file(runner: CliRunner) -> None:
    result = runner.invoke(app, ["upload", "--wpat", "x", "missing.bam"])
    assert result.exit_code == 2
    _no_traceback(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "missing.bam" in lines[0]
    assert "does not exist" in lines[0]


def test_upload_crypt4gh_file_refused(runner: CliRunner) -> None:
    Path("enc.bam").write_bytes(CRYPT4GH_MAGIC + b"\x01\x00\x00\x00" + b"x" * 100)
    result = runner.invoke(app, ["upload", "enc.bam"])
    assert result.exit_code == 2
    _no_traceback(result)
    assert "already Crypt4GH-encrypted" in result.stderr


def test_upload_without_files(runner: CliRunner) -> None:
    result = runner.invoke(app, ["upload"])
    assert result.exit_code == 2
    assert "No files given" in result.stderr


def test_upload_files_and_manifest(runner: CliRunner) -> None:
    Path("a.bam").write_bytes(b"a")
    Path("m.tsv").write_text("a.bam\ta\n")
    result = runner.invoke(app, ["upload", "--manifest", "m.tsv", "a.bam"])
    assert result.exit_code == 2
    assert "not both" in result.stderr


def test_batch_upload_manifest_with_spaces(runner: CliRunner) -> None:
    Path("m.tsv").write_text("a.bam  a\n")
    result = runner.invoke(app, ["batch-upload", "--tsv", "m.tsv"])
    assert result.exit_code == 2
    _no_traceback(result)
    assert "tab" in result.stderr


def test_upload_with_invalid_configuration(runner: CliRunner) -> None:
    Path("a.bam").write_bytes(b"a")
    Path(".ghga_connector.yaml").write_text("part_size: 1\n")
    result = runner.invoke(app, ["upload", "a.bam"])
    assert result.exit_code == 2
    _no_traceback(result)
    assert "part_size" in result.stderr


def test_upload_missing_key_file(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    Path("a.bam").write_bytes(b"a")
    monkeypatch.setenv("GHGA_CONNECTOR_WPAT", "some-token")
    result = runner.invoke(app, ["upload", "a.bam"])
    assert result.exit_code == 2
    _no_traceback(result)
    assert "key.pub" in result.stderr


def test_download_creates_a_missing_output_dir(runner: CliRunner) -> None:
    """Like aws s3 cp and rclone: a missing --output-dir is created (with its parents)."""
    result = runner.invoke(app, ["download", "--output-dir", "new/nested"])
    assert result.exit_code == 2  # no key pair here: the next problem
    _no_traceback(result)
    assert Path("new/nested").is_dir()
    assert "key.pub" in result.stderr


def test_download_dry_run_does_not_create_the_output_dir(runner: CliRunner) -> None:
    runner.invoke(app, ["download", "--dry-run", "--output-dir", "new"])
    assert not Path("new").exists()


def test_download_output_dir_that_is_a_file(runner: CliRunner) -> None:
    Path("afile").write_text("x")
    result = runner.invoke(app, ["download", "--output-dir", "afile"])
    assert result.exit_code == 2
    _no_traceback(result)
    assert "is not a folder" in result.stderr


def test_short_version_option(runner: CliRunner) -> None:
    result = runner.invoke(app, ["-V"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"ghga-connector {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_help_shows_the_global_options(runner: CliRunner, command: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--json" in result.output and "--quiet" in result.output


@pytest.mark.parametrize(
    ("command", "example"),
    [
        ("status", "ghga-connector status --json"),
        ("config", "ghga-connector config --config"),
        ("batch-upload", "ghga-connector batch-upload --tsv files.tsv"),
    ],
)
def test_help_examples(runner: CliRunner, command: str, example: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert example in result.output


def test_decrypt_without_c4gh_files(runner: CliRunner) -> None:
    Path("in").mkdir()
    Path("in/readme.txt").write_text("x")
    result = runner.invoke(app, ["decrypt", "--input-dir", "in"])
    assert result.exit_code == 2
    _no_traceback(result)
    assert "no .c4gh files" in result.stderr


def test_decrypt_missing_input_dir(runner: CliRunner) -> None:
    result = runner.invoke(app, ["decrypt", "--input-dir", "nope"])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_decrypt_roundtrip(runner: CliRunner, key_files: tuple[Path, Path]) -> None:
    import hashlib
    import io

    from crypt4gh import lib as c4gh_lib
    from crypt4gh.keys import get_private_key, get_public_key

    secret = get_private_key("key.sec", lambda: "")
    public = get_public_key("key.pub")
    plain = os.urandom(70_000)
    out = io.BytesIO()
    c4gh_lib.encrypt([(0, secret, public)], io.BytesIO(plain), out)
    Path("data").mkdir()
    Path("data/GHGAF1.bam.c4gh").write_bytes(out.getvalue())
    Path("data/GHGAF1.bam.c4gh.sha256").write_text(
        f"{hashlib.sha256(plain).hexdigest()}  GHGAF1.bam\n"
    )
    result = runner.invoke(app, ["decrypt", "--input-dir", "data"])
    assert result.exit_code == 0, result.output
    assert Path("data/GHGAF1.bam").read_bytes() == plain
    # a second run skips the existing output and still exits 0
    again = runner.invoke(app, ["--json", "decrypt", "--input-dir", "data"])
    assert again.exit_code == 0
    assert json.loads(again.stdout.splitlines()[0])["outcome"] == "skipped"


def _encrypted_file(name: str, plain: bytes) -> Path:
    import io

    from crypt4gh import lib as c4gh_lib
    from crypt4gh.keys import get_private_key, get_public_key

    out = io.BytesIO()
    secret, public = get_private_key("key.sec", lambda: ""), get_public_key("key.pub")
    c4gh_lib.encrypt([(0, secret, public)], io.BytesIO(plain), out)
    Path("data").mkdir(exist_ok=True)
    path = Path("data") / name
    path.write_bytes(out.getvalue())
    return path


def test_decrypt_without_checksum_is_unverified_exit_1(
    runner: CliRunner, key_files: tuple[Path, Path]
) -> None:
    plain = os.urandom(70_000)
    _encrypted_file("GHGAF1.bam.c4gh", plain)
    result = runner.invoke(app, ["--json", "decrypt", "--input-dir", "data"])
    assert result.exit_code == 1, result.output
    record = json.loads(result.stdout.splitlines()[0])
    assert record["outcome"] == "unverified"
    assert record["verified"] is False
    assert "--allow-unverified" in result.output
    # written, but never under the final name
    assert not Path("data/GHGAF1.bam").exists()
    assert Path("data/GHGAF1.bam.unverified").read_bytes() == plain
    # the same command again is unverified again, exit 1 (not "skipped", exit 0)
    again = runner.invoke(app, ["--json", "decrypt", "--input-dir", "data"])
    assert again.exit_code == 1, again.output
    assert json.loads(again.stdout.splitlines()[0])["outcome"] == "unverified"
    accepted = runner.invoke(app, ["decrypt", "--input-dir", "data", "--allow-unverified"])
    assert accepted.exit_code == 0, accepted.output
    assert "unverified" in accepted.output
    assert Path("data/GHGAF1.bam").read_bytes() == plain
    # a final-named file without a checksum file stays unverified on every run
    rerun = runner.invoke(app, ["--json", "decrypt", "--input-dir", "data"])
    assert rerun.exit_code == 1, rerun.output


def test_decrypt_reads_the_plaintext_named_sidecar(
    runner: CliRunner, key_files: tuple[Path, Path]
) -> None:
    import hashlib

    plain = os.urandom(70_000)
    _encrypted_file("GHGAF1.bam.c4gh", plain)
    Path("data/GHGAF1.bam.sha256").write_text(f"{hashlib.sha256(plain).hexdigest()}  GHGAF1.bam\n")
    result = runner.invoke(app, ["--json", "decrypt", "--input-dir", "data"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["verified"] is True


def test_decrypt_bad_file_exits_1(runner: CliRunner, key_files: tuple[Path, Path]) -> None:
    Path("data").mkdir()
    Path("data/x.c4gh").write_bytes(b"not crypt4gh")
    result = runner.invoke(app, ["decrypt", "--input-dir", "data"])
    assert result.exit_code == 1
    _no_traceback(result)
    assert not Path("data/x").exists()


def test_wpat_argument_warns(runner: CliRunner, key_files: tuple[Path, Path]) -> None:
    Path("a.bam").write_bytes(b"a")
    result = runner.invoke(app, ["upload", "--wpat", "not-a-token", "a.bam"])
    # the malformed token fails locally, before any network call
    assert result.exit_code == 2
    _no_traceback(result)
    assert "visible to other users" in result.stderr
    assert "malformed" in result.stderr
    assert "not-a-token" not in result.stderr


def test_wpat_argument_warns_even_if_keys_fail(runner: CliRunner) -> None:
    Path("a.bam").write_bytes(b"a")
    result = runner.invoke(app, ["upload", "--wpat", "not-a-token", "a.bam"])
    assert result.exit_code == 2
    assert "visible to other users" in result.stderr


def test_config_shows_sources(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    Path("conf.yaml").write_text("max_wait_time: 17\npart_size: 8388608\n")
    monkeypatch.setenv("GHGA_CONNECTOR_PART_SIZE", "33554432")
    result = runner.invoke(app, ["--json", "--config", "conf.yaml", "config"])
    assert result.exit_code == 0, result.output
    rows = {row["setting"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert rows["part_size"] == {
        "setting": "part_size",
        "value": "33554432",
        "source": "environment",
    }
    assert rows["max_wait_time"]["value"] == "17"
    assert rows["max_wait_time"]["source"] == "conf.yaml"
    assert rows["max_concurrent_uploads"]["source"] == "default"


def test_config_hides_the_proxy_password(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GHGA_CONNECTOR_PROXY", "http://me:hunter2@proxy.example.org:3128")
    result = runner.invoke(app, ["--json", "config"])
    assert result.exit_code == 0, result.output
    rows = {row["setting"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert rows["proxy"]["value"] == "http://me:***@proxy.example.org:3128"
    assert "hunter2" not in result.output


def test_config_table(runner: CliRunner) -> None:
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    assert "Configuration file: none" in result.stdout
    assert "wkvs_api_url" in result.stdout
    assert "default" in result.stdout


def test_config_with_missing_file(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--config", "missing.yaml", "config"])
    assert result.exit_code == 2
    _no_traceback(result)
    assert "missing.yaml" in result.stderr


def test_status_without_journals(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHGA_CONNECTOR_STATE_DIR", str(Path.cwd() / "state"))
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "No unfinished uploads" in result.stdout


def test_delete_needs_exactly_one_selector(runner: CliRunner) -> None:
    result = runner.invoke(app, ["delete"])
    assert result.exit_code == 2
    assert "exactly one" in result.stderr


@pytest.mark.parametrize("command", ["upload", "decrypt"])
def test_wrong_passphrase_is_reported_by_the_cli(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    c4gh.generate("key.sec", "key.pub", passphrase=b"right", comment=b"")
    monkeypatch.setenv("C4GH_PASSPHRASE", "wrong")
    monkeypatch.setenv("GHGA_CONNECTOR_WPAT", "some-token")
    Path("a.bam").write_bytes(b"a")
    Path("data").mkdir()
    Path("data/x.c4gh").write_bytes(b"x")
    args = ["upload", "a.bam"] if command == "upload" else ["decrypt", "--input-dir", "data"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "Error:" in result.stderr
    assert "passphrase" in result.stderr.lower()


def test_config_command_dotenv_does_not_override_config_option(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path(".env").write_text(
        "GHGA_CONNECTOR_WKVS_API_URL=https://elsewhere.example/.well-known\n"
        "GHGA_CONNECTOR_MAX_WAIT_TIME=99\nGHGA_CONNECTOR_PART_SIZ=1\n"
    )
    Path("conf.yaml").write_text("wkvs_api_url: https://data.ghga.de/.well-known\n")
    result = runner.invoke(app, ["--json", "--config", "conf.yaml", "config"])
    assert result.exit_code == 0, result.output
    rows = {row["setting"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert rows["wkvs_api_url"]["source"] == "conf.yaml"
    assert "elsewhere" not in rows["wkvs_api_url"]["value"]
    assert rows["max_wait_time"] == {"setting": "max_wait_time", "value": "99", "source": ".env"}
    (warning,) = result.stderr.strip().splitlines()
    assert "GHGA_CONNECTOR_PART_SIZ " in warning and "GHGA_CONNECTOR_PART_SIZE" in warning


@pytest.mark.parametrize(
    ("command", "setting"),
    [("upload", "max_concurrent_uploads"), ("download", "max_concurrent_downloads")],
)
def test_concurrency_options_set_the_settings(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, command: str, setting: str
) -> None:
    from ghga_connector import cli
    from ghga_connector.cli_session import load_run_config
    from ghga_connector.errors import UserInputError

    seen = {}

    def spy(options, overrides=None):  # type: ignore[no-untyped-def]
        config = load_run_config(options, overrides)
        seen.update(max_parallel_files=config.max_parallel_files, parts=getattr(config, setting))
        raise UserInputError("stop here")

    monkeypatch.setattr(cli, "load_run_config", spy)
    Path("a.bam").write_bytes(b"x")
    args = ["a.bam"] if command == "upload" else ["--output-dir", "out"]
    result = runner.invoke(app, [command, "--parallel-files", "2", "--parts-in-flight", "9", *args])
    assert "stop here" in result.stderr, result.output
    assert seen == {"max_parallel_files": 2, "parts": 9}


def test_concurrency_options_are_checked(runner: CliRunner) -> None:
    result = runner.invoke(app, ["upload", "--parallel-files", "6", "a.bam"])
    assert result.exit_code == 2


def test_services_other_than_production_are_named(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "http://127.0.0.1:9/.well-known"
    monkeypatch.setenv("GHGA_CONNECTOR_WKVS_API_URL", url)
    note = f"Using the GHGA services at {url} (not GHGA production)."
    result = runner.invoke(app, ["ls", "--wpat-file", "missing.wpat"])
    assert note in result.stderr
    assert note not in runner.invoke(app, ["--quiet", "ls", "--wpat-file", "x"]).stderr
    assert note not in runner.invoke(app, ["status"]).stderr  # contacts no service
    monkeypatch.delenv("GHGA_CONNECTOR_WKVS_API_URL")
    assert "Using the GHGA services" not in runner.invoke(app, ["ls"]).stderr

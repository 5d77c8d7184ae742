"""config.py: defaults, YAML file, environment precedence, errors, nothing at import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ghga_connector.config import (
    CONFIG_ENV_VAR,
    Config,
    describe_sources,
    find_config_file,
    load_config,
)
from ghga_connector.errors import ConfigurationError


def test_defaults(clean_env: Path) -> None:
    config, path = load_config()
    assert path is None
    assert str(config.wkvs_api_url).rstrip("/") == "https://data.ghga.de/.well-known"
    assert config.part_size == 16 * 1024 * 1024
    assert config.max_concurrent_uploads == 6
    assert config.max_concurrent_downloads == 6
    assert config.client_num_retries == 5
    assert config.client_retry_status_codes == [408, 429, 500, 502, 503, 504]
    assert config.ca_bundle is None


def test_yaml_file_via_explicit_path(clean_env: Path, tmp_path: Path) -> None:
    yaml_file = tmp_path / "conf.yaml"
    yaml_file.write_text(
        "wkvs_api_url: http://127.0.0.1:8080/.well-known\n"
        "part_size: 8388608\n"
        "MAX_WAIT_TIME: 17\n"  # keys are case-insensitive
    )
    config, path = load_config(yaml_file)
    assert path == yaml_file
    assert str(config.wkvs_api_url).startswith("http://127.0.0.1:8080/.well-known")
    assert config.part_size == 8_388_608
    assert config.max_wait_time == 17


def test_yaml_named_by_environment(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    yaml_file = tmp_path / "named.yaml"
    yaml_file.write_text("max_parallel_files: 2\n")
    monkeypatch.setenv(CONFIG_ENV_VAR, str(yaml_file))
    config, path = load_config()
    assert path == yaml_file
    assert config.max_parallel_files == 2


def test_yaml_in_working_directory_then_home(clean_env: Path) -> None:
    home_file = Path.home() / ".ghga_connector.yaml"
    home_file.write_text("max_wait_time: 11\n")
    assert find_config_file() == home_file
    cwd_file = clean_env / ".ghga_connector.yaml"
    cwd_file.write_text("max_wait_time: 22\n")
    assert find_config_file() == cwd_file
    assert load_config()[0].max_wait_time == 22


def test_environment_beats_yaml(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    yaml_file = tmp_path / "conf.yaml"
    yaml_file.write_text("part_size: 8388608\nmax_wait_time: 17\n")
    monkeypatch.setenv("GHGA_CONNECTOR_PART_SIZE", "33554432")
    config, _ = load_config(yaml_file)
    assert config.part_size == 33_554_432
    assert config.max_wait_time == 17


def test_lowercase_environment_beats_yaml(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    yaml_file = tmp_path / "conf.yaml"
    yaml_file.write_text("max_wait_time: 17\n")
    monkeypatch.setenv("ghga_connector_max_wait_time", "99")
    assert load_config(yaml_file)[0].max_wait_time == 99


def test_dotenv_file_is_read(clean_env: Path) -> None:
    (clean_env / ".env").write_text("GHGA_CONNECTOR_MAX_WAIT_TIME=99\n")
    assert load_config()[0].max_wait_time == 99


def test_explicit_config_beats_dotenv(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A .env in the working folder never overrides --config (nor a file named by variable)."""
    (clean_env / ".env").write_text(
        "GHGA_CONNECTOR_MAX_WAIT_TIME=99\nGHGA_CONNECTOR_WKVS_API_URL=https://evil.example\n"
    )
    yaml_file = tmp_path / "conf.yaml"
    yaml_file.write_text("max_wait_time: 17\nwkvs_api_url: https://data.ghga.de/.well-known\n")
    config = load_config(yaml_file)[0]
    assert config.max_wait_time == 17
    assert config.wkvs_api_url.host == "data.ghga.de"
    monkeypatch.setenv(CONFIG_ENV_VAR, str(yaml_file))
    assert load_config()[0].max_wait_time == 17
    rows = {row.setting: row.source for row in describe_sources(yaml_file)[0]}
    assert rows["max_wait_time"] == rows["wkvs_api_url"] == str(yaml_file)


def test_dotenv_beats_a_yaml_file_found_but_not_named(clean_env: Path) -> None:
    (clean_env / ".env").write_text("GHGA_CONNECTOR_MAX_WAIT_TIME=99\n")
    (clean_env / ".ghga_connector.yaml").write_text("max_wait_time: 17\npart_size: 8388608\n")
    config = load_config()[0]
    assert (config.max_wait_time, config.part_size) == (99, 8_388_608)
    rows = {row.setting: row.source for row in describe_sources()[0]}
    assert rows["max_wait_time"] == ".env"


def test_environment_beats_dotenv(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / ".env").write_text("GHGA_CONNECTOR_MAX_WAIT_TIME=99\n")
    monkeypatch.setenv("GHGA_CONNECTOR_MAX_WAIT_TIME", "5")
    assert load_config()[0].max_wait_time == 5


def test_explicit_config_beats_the_working_folders_yaml(clean_env: Path, tmp_path: Path) -> None:
    (clean_env / ".ghga_connector.yaml").write_text("max_wait_time: 22\npart_size: 8388608\n")
    named = tmp_path / "named.yaml"
    named.write_text("max_wait_time: 17\n")
    config, path = load_config(named)
    assert path == named
    assert (config.max_wait_time, config.part_size) == (17, 16 * 1024 * 1024)


def _make_untrusted(path: Path, how: str) -> None:
    if how == "writable by others":
        path.chmod(0o666)
    else:
        os.chown(path, 4242, 4242)


@pytest.mark.parametrize("how", ["writable by others", "another user's"])
def test_an_untrusted_dotenv_is_ignored_with_a_warning(clean_env: Path, how: str) -> None:
    if how == "another user's" and os.geteuid() != 0:
        pytest.skip("only root can give a file to another user")
    dotenv = clean_env / ".env"
    dotenv.write_text("GHGA_CONNECTOR_WKVS_API_URL=https://evil.example/.well-known\n")
    _make_untrusted(dotenv, how)
    warnings: list[str] = []
    config, _ = load_config(warn=warnings.append)
    assert config.wkvs_api_url.host == "data.ghga.de"
    assert len(warnings) == 1 and "ignoring" in warnings[0] and ".env" in warnings[0]


@pytest.mark.parametrize("how", ["writable by others", "another user's"])
def test_an_untrusted_yaml_in_the_working_folder_is_ignored(clean_env: Path, how: str) -> None:
    if how == "another user's" and os.geteuid() != 0:
        pytest.skip("only root can give a file to another user")
    home_file = Path.home() / ".ghga_connector.yaml"
    home_file.write_text("max_wait_time: 11\n")
    here = clean_env / ".ghga_connector.yaml"
    here.write_text("max_wait_time: 22\n")
    _make_untrusted(here, how)
    warnings: list[str] = []
    config, path = load_config(warn=warnings.append)
    assert path == home_file and config.max_wait_time == 11
    assert len(warnings) == 1 and str(here) in warnings[0]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://data.ghga.de/.well-known", True),
        ("http://127.0.0.1:8080/.well-known", True),
        ("http://127.1.2.3/.well-known", True),
        ("http://localhost:8080/.well-known", True),
        ("http://[::1]:8080/.well-known", True),
        ("http://data.ghga.de/.well-known", False),
        ("http://10.0.0.5/.well-known", False),
    ],
)
def test_http_wkvs_only_on_loopback(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, url: str, allowed: bool
) -> None:
    monkeypatch.setenv("GHGA_CONNECTOR_WKVS_API_URL", url)
    if allowed:
        load_config()
        return
    with pytest.raises(ConfigurationError, match="http://") as info:
        load_config()
    assert "GHGA_CONNECTOR_WKVS_API_URL" in info.value.message
    monkeypatch.setenv("GHGA_CONNECTOR_ALLOW_HTTP_WKVS", "true")
    assert str(load_config()[0].wkvs_api_url).startswith(url.rstrip("/"))


def test_unknown_environment_variables_and_dotenv_keys_are_warned_about(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GHGA_CONNECTOR_PARTSIZE", "8388608")
    monkeypatch.setenv("GHGA_CONNECTOR_WPAT", "not a setting, but known")
    (clean_env / ".env").write_text("GHGA_CONNECTOR_MAX_WAIT=5\nOTHER_TOOL=1\n")
    warnings: list[str] = []
    config, _ = load_config(warn=warnings.append)
    assert config.part_size == 16 * 1024 * 1024  # ignored, not an error
    assert len(warnings) == 2, warnings
    env_line, dotenv_line = sorted(warnings, key=lambda line: ".env" in line)
    assert "GHGA_CONNECTOR_PARTSIZE" in env_line and "GHGA_CONNECTOR_PART_SIZE" in env_line
    assert (
        "GHGA_CONNECTOR_MAX_WAIT " in dotenv_line and "GHGA_CONNECTOR_MAX_WAIT_TIME" in dotenv_line
    )
    assert all("\n" not in line for line in warnings)


def test_overrides_beat_environment(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHGA_CONNECTOR_MAX_WAIT_TIME", "99")
    # overrides are passed as init values, the highest precedence
    config, _ = load_config(max_wait_time=5)
    assert config.max_wait_time == 5


def test_missing_file_named_by_environment(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONFIG_ENV_VAR, str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigurationError, match=CONFIG_ENV_VAR) as info:
        load_config()
    assert info.value.exit_code == 2


def test_missing_explicit_file(clean_env: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("part_size: 10\n", "part_size"),
        ("max_concurrent_uploads: 0\n", "max_concurrent_uploads"),
        ("wkvs_api_url: not a url\n", "wkvs_api_url"),
        ("client_retry_status_codes: [503, 999]\n", "client_retry_status_codes"),
        ("timeout: -1\n", "timeout"),
    ],
)
def test_invalid_value_names_the_field(
    clean_env: Path, tmp_path: Path, content: str, field: str
) -> None:
    yaml_file = tmp_path / "conf.yaml"
    yaml_file.write_text(content)
    with pytest.raises(ConfigurationError) as info:
        load_config(yaml_file)
    assert field in info.value.message
    assert str(yaml_file) in info.value.message


def test_invalid_environment_value_names_the_field(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GHGA_CONNECTOR_MAX_PARALLEL_FILES", "many")
    with pytest.raises(ConfigurationError, match="max_parallel_files"):
        load_config()


@pytest.mark.parametrize("content", ["a: [unclosed\n", "- just\n- a list\n"])
def test_invalid_yaml(clean_env: Path, tmp_path: Path, content: str) -> None:
    yaml_file = tmp_path / "conf.yaml"
    yaml_file.write_text(content)
    with pytest.raises(ConfigurationError):
        load_config(yaml_file)


def test_empty_yaml_gives_defaults(clean_env: Path, tmp_path: Path) -> None:
    yaml_file = tmp_path / "conf.yaml"
    yaml_file.write_text("")
    config, path = load_config(yaml_file)
    assert path == yaml_file
    assert config.part_size == 16 * 1024 * 1024


def test_config_is_frozen(clean_env: Path) -> None:
    config = Config()
    with pytest.raises(ValueError):
        config.part_size = 1  # type: ignore[misc]


def test_import_reads_nothing(tmp_path: Path) -> None:
    """Importing the connector must not read or validate any configuration."""
    env = {
        "PATH": "",
        "HOME": str(tmp_path),
        CONFIG_ENV_VAR: str(tmp_path / "missing.yaml"),
        "GHGA_CONNECTOR_PART_SIZE": "not a number",
    }
    (tmp_path / ".ghga_connector.yaml").write_text("- not: a mapping\n")
    code = (
        "import ghga_connector.config, ghga_connector.cli, ghga_connector.inject; print('imported')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout


def test_crypto_threads_sets_the_crypto_pool_and_defaults_to_the_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ghga_connector.inject import crypto_workers

    assert crypto_workers(Config(crypto_threads=1)) == 1
    assert crypto_workers(Config(crypto_threads=3)) == 3
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert crypto_workers(Config()) == 8
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert crypto_workers(Config()) == 2

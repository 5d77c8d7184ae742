"""config.py: defaults, YAML file, environment precedence, errors, nothing at import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ghga_connector.config import (
    CONFIG_ENV_VAR,
    Config,
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


def test_dotenv_beats_yaml(clean_env: Path, tmp_path: Path) -> None:
    (clean_env / ".env").write_text("GHGA_CONNECTOR_MAX_WAIT_TIME=99\n")
    yaml_file = tmp_path / "conf.yaml"
    yaml_file.write_text("max_wait_time: 17\n")
    assert load_config(yaml_file)[0].max_wait_time == 99


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

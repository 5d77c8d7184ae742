"""docs/configuration.md is generated from the settings model and must not drift."""

from pathlib import Path

from ghga_connector.docs_gen import render

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_reference_is_current() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == render(), "run 'make docs' to regenerate docs/configuration.md"


def test_every_setting_is_documented() -> None:
    from ghga_connector.config import Config

    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name in Config.model_fields:
        assert f"`{name}`" in text

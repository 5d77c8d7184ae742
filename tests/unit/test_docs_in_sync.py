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


def _printed_commands() -> list[str]:
    """The commands ``ghga-sandbox serve`` prints, for the default state folder."""
    from types import SimpleNamespace

    from ghga_sandbox.cli import _how_to
    from ghga_sandbox.config import SandboxSettings

    state_dir = Path("/somewhere/.ghga-sandbox")
    settings = SandboxSettings(
        host="127.0.0.1", port=8080, public_url="http://127.0.0.1:8080", state_dir=state_dir
    )
    text = _how_to(settings, SimpleNamespace(file_upload_box_id="box"), "http://s3")
    lines = [line.strip() for line in text.splitlines()]
    starts = ("export ", "ghga-connector ", "ghga-sandbox archive")
    commands = [line for line in lines if line.startswith(starts)]
    assert len(commands) == 4
    # the documentation shows them for a sandbox started in /home/you
    return [command.replace(str(state_dir), "/home/you/.ghga-sandbox") for command in commands]


def test_try_it_without_an_account() -> None:
    for doc in (ROOT / "README.md", ROOT / "docs" / "user-guide.md"):
        text = doc.read_text(encoding="utf-8")
        assert "## Try it without an account" in text, doc
        # 5.0.0 is not on PyPI: the install line installs this repository
        assert "python3 -m pip install '.[sandbox]'" in text, doc
        assert "pip install 'ghga-connector[sandbox]'" not in text, doc
        assert "ghga-sandbox serve" in text, doc
        for command in _printed_commands():
            assert command in text, (doc, command)


def test_troubleshooting_table_has_the_new_messages() -> None:
    text = (ROOT / "docs" / "user-guide.md").read_text(encoding="utf-8")
    for message in (
        "The access token is incomplete or damaged",
        "Unknown setting 'wkvs_url'",
        "holds a private key",
        "is a folder, not a file",
        "is used twice: for",
        "Line N of",
        "not both",
        "is readable by other users",
        "using GHGA production",
        "the sandbox needs: pip install '.[sandbox]' in the folder of the ghga-connector",
        "cannot listen on 127.0.0.1:8080: the port is already in use",
        "is used by the sandbox running as PID N on port P",
        "The upload box is archived",
        "An alias must not be empty.",
    ):
        assert message in text, message

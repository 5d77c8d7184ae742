"""inject.py parse_wpat/open_wpat and prompts.py read_wpat/passphrase_source."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest
from nacl.public import PublicKey, SealedBox

from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.errors import PassphraseError, TokenError
from ghga_connector.inject import open_wpat, parse_wpat
from ghga_connector.prompts import PASSPHRASE_ENV, WPAT_ENV, passphrase_source, read_wpat

TOKEN = "A" * 24


def _sealed(public: bytes, plain: bytes = TOKEN.encode()) -> str:
    return base64.b64encode(SealedBox(PublicKey(public)).encrypt(plain)).decode()


def make_wpat(public: bytes, plain: bytes = TOKEN.encode()) -> tuple[str, str]:
    wp_id = str(uuid.uuid4())
    return wp_id, f"{wp_id}:{_sealed(public, plain)}"


def test_good_token(user_keys: KeyPair) -> None:
    wp_id, text = make_wpat(user_keys.public)
    assert len(text.split(":")[1]) == 96
    assert parse_wpat(text) == (wp_id, text.split(":")[1])
    assert open_wpat(text, user_keys) == (wp_id, TOKEN)


def test_surrounding_whitespace_is_ignored(user_keys: KeyPair) -> None:
    wp_id, text = make_wpat(user_keys.public)
    assert open_wpat(f"  {text}\n", user_keys) == (wp_id, TOKEN)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no-colon-at-all",
        f"{uuid.uuid4()}:short",
        f"{uuid.uuid4()}:{'A' * 96}:extra",
        f"short:{'A' * 96}",
        f"{uuid.uuid4()}:{'A' * 200}",
    ],
)
def test_wrong_shape(text: str) -> None:
    with pytest.raises(TokenError, match=r"malformed|incomplete or damaged") as info:
        parse_wpat(text)
    assert info.value.exit_code == 2
    assert info.value.hint


def test_work_package_id_not_a_uuid(user_keys: KeyPair) -> None:
    text = "x" * 36 + ":" + _sealed(user_keys.public)
    with pytest.raises(TokenError, match="not a UUID"):
        parse_wpat(text)


def test_sealed_for_another_key(user_keys: KeyPair, other_keys: KeyPair) -> None:
    _, text = make_wpat(other_keys.public)
    with pytest.raises(TokenError, match="not issued for your key pair"):
        open_wpat(text, user_keys)


def test_sealed_text_not_base64(user_keys: KeyPair) -> None:
    text = f"{uuid.uuid4()}:{'!' * 96}"
    with pytest.raises(TokenError):
        open_wpat(text, user_keys)


@pytest.mark.parametrize("plain", [b"short-token!", b"A" * 23 + b"!", "Ä".encode() * 12])
def test_sealed_content_not_a_token(user_keys: KeyPair, plain: bytes) -> None:
    _, text = make_wpat(user_keys.public, plain)
    with pytest.raises(TokenError):
        open_wpat(text, user_keys)


def test_error_messages_do_not_leak_the_token(user_keys: KeyPair, other_keys: KeyPair) -> None:
    _, text = make_wpat(other_keys.public)
    with pytest.raises(TokenError) as info:
        open_wpat(text, user_keys)
    assert text.split(":")[1] not in str(info.value) + info.value.hint


# --- prompts.read_wpat ---------------------------------------------------------------


class _Warnings(list[str]):
    def __call__(self, text: str) -> None:
        self.append(text)


def _no_prompt(text: str) -> str:
    raise AssertionError("must not prompt")


@pytest.fixture
def no_wpat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WPAT_ENV, raising=False)


def test_read_from_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WPAT_ENV, "from-env")
    path = tmp_path / "token.wpat"
    path.write_text("  id:sealed\n")
    warnings = _Warnings()
    assert read_wpat(path, None, warnings, prompt=_no_prompt) == "id:sealed"
    assert warnings == []


def test_file_and_argument_together_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "token.wpat"
    path.write_text("id:sealed\n")
    with pytest.raises(TokenError, match="not both") as info:
        read_wpat(path, "from-arg", _Warnings(), prompt=_no_prompt)
    assert info.value.exit_code == 2


def test_read_from_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "token.wpat"
    path.write_text("\n")
    with pytest.raises(TokenError, match="empty"):
        read_wpat(path, None, _Warnings(), prompt=_no_prompt)


def test_read_from_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TokenError, match="does not exist") as info:
        read_wpat(tmp_path / "nope", None, _Warnings(), prompt=_no_prompt)
    assert "nope" in info.value.message
    assert "Errno" not in info.value.message


@pytest.mark.parametrize("cut", [1, 10, 60])
def test_token_cut_short_is_damaged(user_keys: KeyPair, cut: int) -> None:
    _, text = make_wpat(user_keys.public)
    with pytest.raises(TokenError, match="incomplete or damaged") as info:
        open_wpat(text[:-cut], user_keys)
    assert f"{len(text) - cut} characters, expected 133" in info.value.message
    assert "copy it again" in info.value.message
    assert "not issued" not in info.value.message


def test_token_wrapped_onto_two_lines_is_damaged(user_keys: KeyPair) -> None:
    _, text = make_wpat(user_keys.public)
    with pytest.raises(TokenError, match=r"incomplete or damaged.*several lines"):
        open_wpat(text[:70] + "\n" + text[70:], user_keys)


def test_token_with_bad_base64_is_damaged(user_keys: KeyPair) -> None:
    _, text = make_wpat(user_keys.public)
    with pytest.raises(TokenError, match="incomplete or damaged"):
        open_wpat(text[:-4] + "!!!!", user_keys)


def test_read_from_argument_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WPAT_ENV, "from-env")
    warnings = _Warnings()
    assert read_wpat(None, " id:sealed ", warnings, prompt=_no_prompt) == "id:sealed"
    assert len(warnings) == 1
    assert "--wpat" in warnings[0]
    assert "visible" in warnings[0]
    assert "id:sealed" not in warnings[0]


def test_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WPAT_ENV, " id:sealed\n")
    warnings = _Warnings()
    assert read_wpat(None, None, warnings, prompt=_no_prompt) == "id:sealed"
    assert warnings == []


def test_missing_token(no_wpat_env: None) -> None:
    # stdin is not a terminal under pytest; if it were, an empty answer three times fails too
    answers: list[str] = []

    def prompt(text: str) -> str:
        answers.append(text)
        return ""

    with pytest.raises(TokenError, match="No access token"):
        read_wpat(None, None, _Warnings(), prompt=prompt)
    assert len(answers) in (0, 3)


# --- prompts.passphrase_source ------------------------------------------------------


def test_passphrase_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "s3cret")
    assert passphrase_source(tmp_path / "key.sec", prompt=_no_prompt)() == "s3cret"


def test_passphrase_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    source = passphrase_source(tmp_path / "key.sec", prompt=lambda _: "typed")
    import sys

    if sys.stdin is not None and sys.stdin.isatty():  # pragma: no cover - run with -s
        assert source() == "typed"
    else:
        with pytest.raises(PassphraseError):
            source()

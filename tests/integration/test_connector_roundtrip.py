"""The real ``ghga-connector`` CLI against a real sandbox process, with the example files.

Each test runs the installed command in a subprocess, as a user would, and checks exit
codes, messages and the files left on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BAMS = sorted(EXAMPLES.glob("*.bam"))
ALL_FILES = sorted([*EXAMPLES.glob("*.bam"), *EXAMPLES.glob("*.vcf.gz")])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("GHGA_CONNECTOR_WPAT", None)
    return subprocess.run(
        [sys.executable, "-m", "ghga_connector", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def keys(sandbox) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        "--my-public-key-path",
        str(sandbox.user_pub),
        "--my-private-key-path",
        str(sandbox.user_sec),
    ]


def upload(sandbox, *files: Path, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return run(
        "--json",
        "upload",
        "--wpat-file",
        str(sandbox.upload_wpat_file),
        *keys(sandbox),
        *extra,
        *map(str, files),
        cwd=sandbox.state_dir,
    )


def records(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_round_trip_of_real_files_encrypted_and_decrypted(sandbox, tmp_path: Path) -> None:
    up = upload(sandbox, *ALL_FILES)
    assert up.returncode == 0, up.stderr
    assert [r["outcome"] for r in records(up)] == ["done"] * len(ALL_FILES)
    for record in records(up):
        source = EXAMPLES / str(record["file"])
        assert record["decrypted_sha256"] == sha256(source)

    archived = sandbox.archive()
    assert archived.returncode == 0, archived.stdout + archived.stderr
    listed = run(
        "--json",
        "ls",
        "--wpat-file",
        str(sandbox.download_wpat_file),
        *keys(sandbox),
        cwd=sandbox.state_dir,
    )
    assert listed.returncode == 0, listed.stderr
    rows = records(listed)
    assert len(rows) == len(ALL_FILES)
    assert all(str(r["accession"]).startswith("GHGAF") and r["file"] for r in rows)
    assert all("staged" not in r for r in rows)  # plain ls asks the download service nothing

    out = tmp_path / "out"
    out.mkdir()
    down = run(
        "--json", "download", "--wpat-file", str(sandbox.download_wpat_file), *keys(sandbox),
        "--output-dir", str(out), cwd=sandbox.state_dir,
    )  # fmt: skip
    assert down.returncode == 0, down.stderr
    assert {r["outcome"] for r in records(down)} == {"done"}
    c4gh = sorted(out.glob("*.c4gh"))
    assert len(c4gh) == len(ALL_FILES)
    assert not list(out.glob("*.part"))

    dec = run(
        "--json",
        "decrypt",
        "--input-dir",
        str(out),
        "--my-private-key-path",
        str(sandbox.user_sec),
        cwd=tmp_path,
    )
    assert dec.returncode == 0, dec.stderr
    originals = {sha256(p) for p in ALL_FILES}
    decrypted = {sha256(p) for p in out.iterdir() if p.suffix not in {".c4gh", ".sha256"}}
    assert decrypted == originals
    assert all(r["verified"] for r in records(dec))

    # a second download skips what is there and overwrites nothing
    before = {p: p.stat().st_mtime_ns for p in c4gh}
    again = run(
        "--json", "download", "--wpat-file", str(sandbox.download_wpat_file), *keys(sandbox),
        "--output-dir", str(out), cwd=sandbox.state_dir,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert {r["outcome"] for r in records(again)} == {"skipped"}
    assert before == {p: p.stat().st_mtime_ns for p in c4gh}

    # download --decrypt writes the plaintext directly, verified against the DRS checksum
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    direct = run(
        "--json", "download", "--decrypt", "--wpat-file", str(sandbox.download_wpat_file),
        *keys(sandbox), "--output-dir", str(plain_dir), cwd=sandbox.state_dir,
    )  # fmt: skip
    assert direct.returncode == 0, direct.stderr
    assert {sha256(p) for p in plain_dir.iterdir() if p.suffix != ".sha256"} == originals


def test_upload_skips_files_already_in_the_box(sandbox) -> None:
    first = upload(sandbox, BAMS[0])
    assert first.returncode == 0, first.stderr
    second = upload(sandbox, BAMS[0])
    assert second.returncode == 0, second.stderr
    assert records(second)[0]["outcome"] == "skipped"
    replaced = upload(sandbox, BAMS[0], extra=("--overwrite",))
    assert replaced.returncode == 0, replaced.stderr
    assert records(replaced)[0]["outcome"] == "done"


def test_ls_and_delete(sandbox) -> None:
    assert upload(sandbox, BAMS[0]).returncode == 0
    listed = run(
        "--json",
        "ls",
        "--wpat-file",
        str(sandbox.upload_wpat_file),
        *keys(sandbox),
        cwd=sandbox.state_dir,
    )
    assert listed.returncode == 0, listed.stderr
    rows = records(listed)
    assert rows[0]["alias"] == BAMS[0].name
    assert rows[0]["state"] == "inbox"
    removed = run(
        "delete", "--yes", "--alias", BAMS[0].name, "--wpat-file", str(sandbox.upload_wpat_file),
        *keys(sandbox), cwd=sandbox.state_dir,
    )  # fmt: skip
    assert removed.returncode == 0, removed.stderr
    listed = run(
        "--json",
        "ls",
        "--all",
        "--wpat-file",
        str(sandbox.upload_wpat_file),
        *keys(sandbox),
        cwd=sandbox.state_dir,
    )
    assert [r["state"] for r in records(listed)] == ["cancelled"]


# --- bad input: one line, non-zero exit, nothing damaged --------------------------------


def _assert_clean_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert text in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file(sandbox, tmp_path: Path) -> None:
    result = upload(sandbox, tmp_path / "nope.bam")
    _assert_clean_error(result, 2, "does not exist")


def test_directory_instead_of_file(sandbox, tmp_path: Path) -> None:
    _assert_clean_error(upload(sandbox, tmp_path), 2, "is a folder, not a file")


def test_already_encrypted_file_is_refused(sandbox, tmp_path: Path) -> None:
    encrypted = tmp_path / "x.bam.c4gh"
    encrypted.write_bytes(b"crypt4gh\x01\x00\x00\x00" + b"\x00" * 200)
    _assert_clean_error(upload(sandbox, encrypted), 2, "already Crypt4GH-encrypted")


def test_missing_key_file(sandbox, tmp_path: Path) -> None:
    result = run(
        "upload", "--wpat-file", str(sandbox.upload_wpat_file), "--my-public-key-path",
        str(tmp_path / "none.pub"), "--my-private-key-path", str(sandbox.user_sec), str(BAMS[0]),
        cwd=sandbox.state_dir,
    )  # fmt: skip
    _assert_clean_error(result, 2, "does not exist")


def test_wrong_passphrase(sandbox, tmp_path: Path) -> None:
    from crypt4gh.keys import c4gh

    c4gh.generate(
        str(tmp_path / "k.sec"), str(tmp_path / "k.pub"), passphrase=b"right", comment=b""
    )
    result = run(
        "upload", "--wpat-file", str(sandbox.upload_wpat_file), "--my-public-key-path",
        str(tmp_path / "k.pub"), "--my-private-key-path", str(tmp_path / "k.sec"), str(BAMS[0]),
        cwd=sandbox.state_dir, env={"C4GH_PASSPHRASE": "not-the-Pa55phrase"},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "passphrase" in result.stderr.lower()
    assert "not-the-Pa55phrase" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_malformed_token(sandbox, tmp_path: Path) -> None:
    token = tmp_path / "bad.wpat"
    token.write_text("not-a-token")
    result = run(
        "upload", "--wpat-file", str(token), *keys(sandbox), str(BAMS[0]), cwd=sandbox.state_dir
    )
    _assert_clean_error(result, 2, "malformed")


def test_token_for_another_key(sandbox, tmp_path: Path) -> None:
    from crypt4gh.keys import c4gh

    c4gh.generate(str(tmp_path / "o.sec"), str(tmp_path / "o.pub"), passphrase=b"", comment=b"")
    result = run(
        "upload", "--wpat-file", str(sandbox.upload_wpat_file), "--my-public-key-path",
        str(tmp_path / "o.pub"), "--my-private-key-path", str(tmp_path / "o.sec"), str(BAMS[0]),
        cwd=sandbox.state_dir,
    )  # fmt: skip
    _assert_clean_error(result, 2, "not issued for your key pair")


def test_wrong_or_expired_token_is_refused_by_the_server(sandbox, tmp_path: Path) -> None:
    """A well-formed token whose secret is wrong: the work package service answers 403."""
    import base64

    from nacl.public import PublicKey, SealedBox

    wp_id = sandbox.upload_wpat_file.read_text().strip().split(":")[0]
    pub = base64.b64decode("".join(sandbox.user_pub.read_text().splitlines()[1:-1]))
    sealed = base64.b64encode(SealedBox(PublicKey(pub)).encrypt(b"A" * 24)).decode()
    token = tmp_path / "forged.wpat"
    token.write_text(f"{wp_id}:{sealed}")
    result = run(
        "upload", "--wpat-file", str(token), *keys(sandbox), str(BAMS[0]), cwd=sandbox.state_dir
    )
    _assert_clean_error(result, 2, "refused the access token")
    assert "A" * 24 not in result.stderr


def test_output_dir_missing_is_created(sandbox, tmp_path: Path) -> None:
    result = run(
        "download", "--wpat-file", str(sandbox.upload_wpat_file), *keys(sandbox),
        "--output-dir", str(tmp_path / "missing" / "nested"), cwd=sandbox.state_dir,
    )  # fmt: skip
    assert (tmp_path / "missing" / "nested").is_dir()
    _assert_clean_error(result, 2, "not for downloads")


def test_server_unreachable(sandbox, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("wkvs_api_url: http://127.0.0.1:9/.well-known\nclient_num_retries: 1\n")
    result = run(
        "--config", str(config), "upload", "--wpat-file", str(sandbox.upload_wpat_file),
        *keys(sandbox), str(BAMS[0]), cwd=tmp_path,
    )  # fmt: skip
    _assert_clean_error(result, 1, "Could not reach")


def test_existing_output_is_kept_without_overwrite(sandbox, tmp_path: Path) -> None:
    assert upload(sandbox, BAMS[0]).returncode == 0
    assert sandbox.archive().returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    first = run(
        "--json", "download", "--wpat-file", str(sandbox.download_wpat_file), *keys(sandbox),
        "--output-dir", str(out), cwd=sandbox.state_dir,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    target = next(out.glob("*.c4gh"))
    target.write_bytes(b"precious")
    second = run(
        "--json", "download", "--wpat-file", str(sandbox.download_wpat_file), *keys(sandbox),
        "--output-dir", str(out), cwd=sandbox.state_dir,
    )  # fmt: skip
    # kept, but not called skipped: it is not the archive's file (exit 1)
    assert second.returncode == 1, second.stderr
    [record] = [json.loads(line) for line in second.stdout.splitlines() if line.strip()]
    assert record["outcome"] == "failed"
    assert "does not match the archive's checksum" in record["message"]
    assert target.read_bytes() == b"precious"
    shutil.rmtree(out)


def test_secrets_never_printed_even_with_debug(sandbox, tmp_path: Path) -> None:
    """The WPAT (sealed and opened), the passphrase and presigned URLs stay out of all output."""
    from crypt4gh.keys import c4gh

    from ghga_connector.c4gh.keys import load_key_pair
    from ghga_connector.inject import open_wpat

    wpat_text = sandbox.upload_wpat_file.read_text().strip()
    pair = load_key_pair(sandbox.user_pub, sandbox.user_sec, lambda: "")
    _, plain_token = open_wpat(wpat_text, pair)
    odd = tmp_path / "Probe ä 1.bam"  # spaces and non-ASCII in the name
    odd.write_bytes(BAMS[0].read_bytes())
    outputs = []
    ok = run(
        "--debug",
        "upload",
        "--wpat-file",
        str(sandbox.upload_wpat_file),
        *keys(sandbox),
        str(odd),
        cwd=sandbox.state_dir,
    )
    assert ok.returncode == 0, ok.stderr
    outputs.append(ok.stdout + ok.stderr)
    # an error path with --debug: the server refuses a forged token
    c4gh.generate(
        str(tmp_path / "p.sec"), str(tmp_path / "p.pub"), passphrase=b"Secret-Pa55", comment=b""
    )
    bad = run(
        "--debug", "upload", "--wpat", wpat_text, "--my-public-key-path", str(tmp_path / "p.pub"),
        "--my-private-key-path", str(tmp_path / "p.sec"), str(odd), cwd=sandbox.state_dir,
        env={"C4GH_PASSPHRASE": "Secret-Pa55"},
    )  # fmt: skip
    assert bad.returncode == 2
    outputs.append(bad.stdout + bad.stderr)
    for text in outputs:
        assert plain_token not in text
        assert wpat_text.split(":")[1] not in text
        assert "Secret-Pa55" not in text
        assert "X-Amz-Signature" not in text and "Signature=" not in text


def test_verify_redownloads_a_damaged_file_and_keeps_an_intact_one(sandbox, tmp_path: Path) -> None:
    assert upload(sandbox, BAMS[0]).returncode == 0
    assert sandbox.archive().returncode == 0
    for decrypt in (False, True):
        out = tmp_path / f"out-{decrypt}"
        out.mkdir()
        args = [
            "--json",
            "download",
            "--wpat-file",
            str(sandbox.download_wpat_file),
            *keys(sandbox),
            "--output-dir",
            str(out),
        ]
        if decrypt:
            args.append("--decrypt")
        assert run(*args, cwd=sandbox.state_dir).returncode == 0
        target = next(p for p in out.iterdir() if not p.name.endswith(".sha256"))
        intact = run(*args, "--verify", cwd=sandbox.state_dir)
        assert intact.returncode == 0, intact.stderr
        assert records(intact)[0]["outcome"] == "skipped"
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped bit in the middle
        target.write_bytes(bytes(data))
        repaired = run(*args, "--verify", cwd=sandbox.state_dir)
        assert repaired.returncode == 0, repaired.stderr
        assert records(repaired)[0]["outcome"] == "done"
        assert "damaged" in repaired.stderr
        if decrypt:
            assert sha256(target) == sha256(BAMS[0])

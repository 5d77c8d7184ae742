"""The measured tools, one class each, behind one :class:`Tool` protocol.

- :class:`OursTool`: this checkout; ``upload``; ``download --decrypt`` (one pass).
- :class:`OursTwoStepTool`: this checkout; ``download`` then ``decrypt`` (downloads only).
- :class:`V401Tool`: ghga-connector 4.0.1 from PyPI; ``batch-upload``; ``download`` then
  ``decrypt``.
- :class:`Boto3Tool`: raw multipart transfer to the same S3 endpoint, no encryption, with our
  part size and concurrency (``benchmarks/boto3_transfer.py``); never calls the GHGA API.

Every upload is checked: a GHGA tool's box goes through the sandbox's Data Hub step
(each upload is fetched from S3, decrypted and its SHA-256 compared with what the client
declared; then archived) and the archived SHA-256s must equal the inputs' SHA-256s;
boto3's objects are checked by downloading them (its download row) and comparing
SHA-256s. Every download output is compared with the inputs by SHA-256 by the runner.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from benchmarks.data import InputFile
from benchmarks.env import REPO, Env
from benchmarks.measure import ProcResult, combine
from benchmarks.model import BOTO3, OURS, OURS_2STEP, V401, Case
from benchmarks.sandbox_admin import ArchivedFile
from benchmarks.servers import ensure_venv

__all__ = [
    "ALL_TOOLS",
    "BOTO3_BUCKET",
    "Boto3Tool",
    "OursTool",
    "OursTwoStepTool",
    "Tool",
    "UploadCheck",
    "Uploaded",
    "V401Tool",
    "make_tools",
]

BOTO3_BUCKET = "benchmark-boto3"


@dataclass(frozen=True)
class Uploaded:
    """What one upload command left behind: its measurement and where the files went."""

    result: ProcResult
    box: str | None = None
    """The GHGA file upload box (``None`` for boto3, whose objects are under ``tag``)."""
    tag: str = ""


@dataclass(frozen=True)
class UploadCheck:
    """The outcome of checking one upload.

    ``error`` is ``None`` if the check passed; ``pending`` means the check is the later
    download of the same objects (boto3). ``accessions`` are the archived files (GHGA).
    """

    check: str
    error: str | None = None
    accessions: list[str] = field(default_factory=list)
    pending: bool = False


class Tool(Protocol):
    """One measured client: upload, download and the check of its uploads."""

    name: str
    uploads: bool
    """False: the tool only downloads (our two-step download)."""
    calls_ghga_api: bool
    """False (boto3): it downloads what it uploaded itself, not the archived GHGA files, and
    its rows in a case with API latency are copies of the case without."""

    def upload(self, env: Env, case: Case, inputs: Sequence[InputFile], tag: str) -> Uploaded:
        """Upload ``inputs`` (measured); ``tag`` makes folders and keys unique."""
        ...

    def check(self, env: Env, inputs: Sequence[InputFile], uploaded: Uploaded) -> UploadCheck:
        """Check that what was uploaded decrypts to the inputs (SHA-256)."""
        ...

    def download(
        self,
        env: Env,
        case: Case,
        inputs: Sequence[InputFile],
        accessions: Sequence[str],
        out: Path,
        tag: str,
    ) -> ProcResult:
        """Download into ``out`` as plaintext (measured).

        GHGA tools fetch ``accessions``; boto3 fetches what it uploaded under ``tag``.
        """
        ...

    def explain(self, result: ProcResult) -> str:
        """A short excerpt of the output that tells why a run failed."""
        ...


# ---------------------------------------------------------------------------------------
# helpers shared by the GHGA tools


def _keys(env: Env) -> list[str]:
    return ["--my-public-key-path", str(env.pub), "--my-private-key-path", str(env.sec)]


def _ours_cmd(env: Env, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ghga_connector",
        "--json",
        "--config",
        str(env.config_yaml),
        *args,
    ]


def datahub_check(env: Env, inputs: Sequence[InputFile], box: str) -> UploadCheck:
    """Lock, interrogate and archive ``box``; the archived SHA-256s must be the inputs'.

    The sandbox's interrogation fetches every upload from S3, decrypts it with the Data
    Hub key and compares its SHA-256 and size with the client's declaration.
    """
    check = "sha256: the sandbox decrypts every upload; archived sha256 = input sha256"
    try:
        archived = env.admin.archive_box(box)
    except Exception as exc:
        return UploadCheck(check, f"sandbox Data Hub step failed: {exc}")
    accessions, error = compare_archived(env, inputs, archived, box)
    return UploadCheck(check, error, accessions)


def compare_archived(
    env: Env, inputs: Sequence[InputFile], archived: Sequence[ArchivedFile], box: str
) -> tuple[list[str], str | None]:
    """Accessions of a box's archived files and an error if they differ from the inputs."""
    mine = [a for a in archived if a.box_id == box]
    bad = [a for a in mine if a.state != "archived" or not a.accession]
    if bad:
        reasons = "; ".join(f"{a.alias}: {a.state} {a.failure_reason or ''}" for a in bad[:3])
        return [], f"{len(bad)} uploads not archived: {reasons}"
    accessions = [a.accession for a in mine if a.accession]
    objects = env.admin.archived_sha256(accessions)
    got = Counter(objects.values())
    want = Counter(f.sha256 for f in inputs)
    if got != want:
        return accessions, (
            f"{len(accessions)} of {len(inputs)} files archived; SHA-256 of archived content "
            "differs from the inputs"
        )
    return accessions, None


def _wpat(folder: Path, token: str) -> Path:
    path = folder / "token.wpat"
    path.write_text(token + "\n")
    return path


# ---------------------------------------------------------------------------------------
# the tools


class OursTool:
    """This checkout: ``upload``; ``download --decrypt`` (fetch, verify, decrypt in one pass)."""

    name = OURS
    uploads = True
    calls_ghga_api = True

    def upload(self, env: Env, case: Case, inputs: Sequence[InputFile], tag: str) -> Uploaded:
        """Upload all inputs into a fresh box."""
        box, token = env.admin.new_upload_box()
        cwd = env.fresh_dir("run", f"ours-up-{tag}")
        cmd = _ours_cmd(env, "upload", "--wpat-file", str(_wpat(cwd, token)), *_keys(env))
        cmd += [str(f.path) for f in inputs]
        client_env = env.client_env({"GHGA_CONNECTOR_STATE_DIR": str(cwd / "state")})
        res = env.run(cmd, case=case, cwd=cwd, env=client_env, servers=case.clients == 1)
        return Uploaded(res, box, tag)

    def check(self, env: Env, inputs: Sequence[InputFile], uploaded: Uploaded) -> UploadCheck:
        """The Data Hub step and SHA-256 comparison."""
        assert uploaded.box is not None
        return datahub_check(env, inputs, uploaded.box)

    def download(
        self,
        env: Env,
        case: Case,
        inputs: Sequence[InputFile],
        accessions: Sequence[str],
        out: Path,
        tag: str,
    ) -> ProcResult:
        """``download --decrypt`` of a fresh work package over ``accessions``."""
        token = env.admin.download_package(list(accessions))
        cwd = env.fresh_dir("run", f"ours-down-{tag}")
        cmd = _ours_cmd(env, "download", "--wpat-file", str(_wpat(cwd, token)), *_keys(env))
        cmd += ["--output-dir", str(out), "--decrypt"]
        client_env = env.client_env({"GHGA_CONNECTOR_STATE_DIR": str(cwd / "state")})
        return env.run(cmd, case=case, cwd=cwd, env=client_env, servers=case.clients == 1)

    def explain(self, result: ProcResult) -> str:
        """The end of the output."""
        return result.tail()


class OursTwoStepTool(OursTool):
    """This checkout in two steps: ``download`` (encrypted) then ``decrypt``."""

    name = OURS_2STEP
    uploads = False

    def upload(self, env: Env, case: Case, inputs: Sequence[InputFile], tag: str) -> Uploaded:
        """Not a separate upload: :class:`OursTool` uploads."""
        raise NotImplementedError("the two-step variant only downloads")

    def download(
        self,
        env: Env,
        case: Case,
        inputs: Sequence[InputFile],
        accessions: Sequence[str],
        out: Path,
        tag: str,
    ) -> ProcResult:
        """``download`` then ``decrypt``, measured as one (times add up)."""
        token = env.admin.download_package(list(accessions))
        cwd = env.fresh_dir("run", f"ours-down2-{tag}")
        enc = env.fresh_dir("out", f"ours-2step-enc-{tag}")
        client_env = env.client_env({"GHGA_CONNECTOR_STATE_DIR": str(cwd / "state")})
        fetch_cmd = _ours_cmd(env, "download", "--wpat-file", str(_wpat(cwd, token)), *_keys(env))
        fetch = env.run([*fetch_cmd, "--output-dir", str(enc)], case=case, cwd=cwd, env=client_env)
        steps = [("download", fetch)]
        if fetch.ok:
            decrypt_cmd = _ours_cmd(
                env,
                "decrypt",
                "--input-dir",
                str(enc),
                "--output-dir",
                str(out),
                "--my-private-key-path",
                str(env.sec),
            )
            steps.append(("decrypt", env.run(decrypt_cmd, case=case, cwd=cwd, env=client_env)))
        shutil.rmtree(enc, ignore_errors=True)
        return combine(steps)


class V401Tool:
    """ghga-connector 4.0.1 from PyPI: ``batch-upload``; ``download`` then ``decrypt``."""

    name = V401
    uploads = True
    calls_ghga_api = True

    def _exe(self, env: Env) -> Path:
        return ensure_venv(
            env.opts.work_dir / "venv-401",
            "ghga-connector==4.0.1",
            "ghga-connector",
            env.opts.work_dir / "venv-401-install.log",
        )

    def _dir(self, env: Env, name: str) -> Path:
        """A working folder with 4.0.1's config file (it reads ./.ghga_connector.yaml)."""
        cwd = env.fresh_dir("run", name)
        (cwd / ".ghga_connector.yaml").write_text(f"wkvs_api_url: {env.sandbox.wkvs_api_url}\n")
        return cwd

    def upload(self, env: Env, case: Case, inputs: Sequence[InputFile], tag: str) -> Uploaded:
        """``batch-upload`` of all inputs into a fresh box (token piped to its prompt)."""
        exe = self._exe(env)
        box, token = env.admin.new_upload_box()
        cwd = self._dir(env, f"v401-up-{tag}")
        tsv = cwd / "files.tsv"
        tsv.write_text("".join(f"{f.path}\t{f.path.name}\n" for f in inputs))
        cmd = [str(exe), "batch-upload", "--tsv", str(tsv), *_keys(env)]
        res = env.run(cmd, case=case, cwd=cwd, env=env.client_env(), stdin_data=token + "\n")
        return Uploaded(res, box, tag)

    def check(self, env: Env, inputs: Sequence[InputFile], uploaded: Uploaded) -> UploadCheck:
        """The Data Hub step and SHA-256 comparison, as for ours."""
        assert uploaded.box is not None
        return datahub_check(env, inputs, uploaded.box)

    def download(
        self,
        env: Env,
        case: Case,
        inputs: Sequence[InputFile],
        accessions: Sequence[str],
        out: Path,
        tag: str,
    ) -> ProcResult:
        """``download`` (encrypted ``.c4gh``) then ``decrypt``."""
        exe = self._exe(env)
        token = env.admin.download_package(list(accessions))
        cwd = self._dir(env, f"v401-down-{tag}")
        enc = env.fresh_dir("out", f"v401-enc-{tag}")
        fetch = env.run(
            [str(exe), "download", "--output-dir", str(enc), *_keys(env)],
            case=case,
            cwd=cwd,
            env=env.client_env(),
            stdin_data=token + "\n",
        )
        steps = [("download", fetch)]
        if fetch.ok:
            decrypt_cmd = [
                str(exe),
                "decrypt",
                "--input-dir",
                str(enc),
                "--output-dir",
                str(out),
                "--my-private-key-path",
                str(env.sec),
            ]
            steps.append(
                ("decrypt", env.run(decrypt_cmd, case=case, cwd=cwd, env=env.client_env()))
            )
        shutil.rmtree(enc, ignore_errors=True)
        return combine(steps)

    def explain(self, result: ProcResult) -> str:
        """4.0.1 exits 0 after failed files: its failure messages, else the end of output."""
        text = (result.stdout + "\n" + result.stderr).lower()
        if any(m in text for m in ("failed", "error", "traceback", "could not", "aborted")):
            return result.tail()
        return result.tail(400)


class Boto3Tool:
    """Raw boto3 multipart transfer, our part size and concurrency, no encryption."""

    name = BOTO3
    uploads = True
    calls_ghga_api = False

    def _run(self, env: Env, case: Case, action: str, tag: str, *args: str) -> ProcResult:
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.boto3_transfer",
            action,
            "--endpoint",
            env.sandbox.s3_url,
            "--bucket",
            BOTO3_BUCKET,
            "--prefix",
            f"{case.name}/{tag}/",
            "--part-size",
            str(env.part_size),
            "--concurrency",
            str(env.concurrency),
            *args,
        ]
        return env.run(
            cmd,
            case=case,
            cwd=REPO,
            env={**env.sandbox.env(), **env.client_env()},
            servers=case.clients == 1,
        )

    def upload(self, env: Env, case: Case, inputs: Sequence[InputFile], tag: str) -> Uploaded:
        """Upload all inputs under ``<case>/<tag>/`` in one bucket."""
        return Uploaded(
            self._run(env, case, "upload", tag, *[str(f.path) for f in inputs]), None, tag
        )

    def check(self, env: Env, inputs: Sequence[InputFile], uploaded: Uploaded) -> UploadCheck:
        """Checked later by downloading the same objects (its download row)."""
        return UploadCheck("sha256 of the boto3 download of the same objects", pending=True)

    def download(
        self,
        env: Env,
        case: Case,
        inputs: Sequence[InputFile],
        accessions: Sequence[str],
        out: Path,
        tag: str,
    ) -> ProcResult:
        """Plain download of what :meth:`upload` stored under the same ``tag``."""
        names = [f.path.name for f in inputs]
        return self._run(env, case, "download", tag, "--output-dir", str(out), *names)

    def explain(self, result: ProcResult) -> str:
        """The end of the output."""
        return result.tail()


ALL_TOOLS: dict[str, type[OursTool] | type[V401Tool] | type[Boto3Tool]] = {
    OURS: OursTool,
    V401: V401Tool,
    BOTO3: Boto3Tool,
}
"""The tools one can select with ``--tools``; selecting ours also runs :class:`OursTwoStepTool`."""


def make_tools(names: Sequence[str]) -> list[Tool]:
    """The tool objects for the selected names, ours followed by its two-step download."""
    tools: list[Tool] = []
    for name in ALL_TOOLS:
        if name in names:
            tools.append(ALL_TOOLS[name]())
            if name == OURS:
                tools.append(OursTwoStepTool())
    return tools

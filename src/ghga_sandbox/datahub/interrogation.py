"""Interrogation (contract §6.4): check an ``inbox`` upload and re-encrypt it for archival."""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from botocore.exceptions import BotoCoreError, ClientError

from ghga_sandbox.c4gh import ENVELOPE_SIZE, body_size, open_envelope
from ghga_sandbox.datahub.pipeline import PART_SIZE, _PartUploads, _PartWriter, _ReadAhead
from ghga_sandbox.datahub.reencrypt import _Reencryptor
from ghga_sandbox.datahub.sinkcheck import SinkCheckError, SinkInterrogation, check_sink_upload
from ghga_sandbox.runtime import Runtime
from ghga_sandbox.state import FileUpload
from ghga_sandbox.storage import bucket_name

__all__ = ["FILES_IN_FLIGHT", "InterrogationError", "Interrogator"]

log = logging.getLogger(__name__)

FILES_IN_FLIGHT = 3
"""Uploads interrogated at once by :meth:`DataHub.interrogate_many`."""


class InterrogationError(Exception):
    """The upload does not decrypt, or its content does not match what was declared."""


class Interrogator:
    """Interrogation and re-encryption of ``inbox`` uploads over the runtime's state and storage."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def interrogate(self, upload: FileUpload) -> FileUpload:
        """Check and re-encrypt one ``inbox`` upload; return it ``interrogated`` or ``failed``.

        Pipelined within the file (see :mod:`ghga_sandbox.datahub`): one reader thread, up to
        ``UPLOAD_THREADS`` upload threads and ``PARTS_IN_FLIGHT`` parts in flight.
        """
        if upload.state != "inbox":
            return upload
        with _PartUploads() as uploads:
            return self._interrogate(upload, uploads)

    def interrogate_many(self, uploads: Sequence[FileUpload]) -> list[FileUpload]:
        """:meth:`interrogate` for several uploads, ``FILES_IN_FLIGHT`` at a time.

        The files share ``UPLOAD_THREADS`` upload threads and the ``PARTS_IN_FLIGHT``
        bound. Returns the results in the order of ``uploads`` (non-``inbox`` uploads
        unchanged). If one raises (anything but a failed check, e.g. an S3 error),
        uploads not started yet stay as they are, the running ones finish, and the
        error of the first such upload in ``uploads`` order is raised.
        """
        todo = [u for u in uploads if u.state == "inbox"]
        if len(todo) <= 1:
            return [self.interrogate(u) for u in uploads]
        with (
            _PartUploads() as parts,
            ThreadPoolExecutor(
                max_workers=min(FILES_IN_FLIGHT, len(todo)), thread_name_prefix="datahub-file"
            ) as files,
        ):
            running = {u.id: files.submit(self._interrogate, u, parts) for u in todo}
            wait(running.values(), return_when=FIRST_EXCEPTION)
            if any(f.done() and not f.cancelled() and f.exception() for f in running.values()):
                for future in running.values():
                    future.cancel()
                wait(running.values())
                for future in running.values():
                    if not future.cancelled() and future.exception() is not None:
                        future.result()  # raises
            return [running[u.id].result() if u.id in running else u for u in uploads]

    def _interrogate(self, upload: FileUpload, uploads: _PartUploads) -> FileUpload:
        started = time.monotonic()
        state = self._rt.state
        writer: _PartWriter | SinkInterrogation
        try:
            if self._rt.sink is not None:
                new_key, secret, writer = self._check_sink(upload)
            else:
                new_key, secret, writer = self._reencrypt(upload, uploads)
        except InterrogationError as error:
            failed = upload.with_state("failed", failure_reason=str(error))
            with state.lock:
                state.put_upload(failed)
                state.bump_box_version(upload.box_id)
            self._rt.storage.delete(upload.bucket_id, upload.object_id)
            log.debug("upload %s failed the Data Hub check: %s", upload.id, error)
            return failed
        with state.lock:
            secret_id = state.put_secret(secret)
            interrogated = upload.with_state(
                "interrogated",
                bucket_id=writer.bucket,
                object_id=new_key,
                encrypted_size=writer.size,
                encrypted_parts_md5=writer.parts_md5,
                encrypted_parts_sha256=writer.parts_sha256,
                secret_id=secret_id,
            )
            state.put_upload(interrogated)
            state.bump_box_version(upload.box_id)
        self._rt.storage.delete(upload.bucket_id, upload.object_id)
        log.debug(
            "interrogated upload %s (%d bytes) in %.2f s",
            upload.id,
            upload.decrypted_size,
            time.monotonic() - started,
        )
        return interrogated

    def _check_sink(self, upload: FileUpload) -> tuple[str, bytes, SinkInterrogation]:
        """``--s3 sink``: check what the sink recorded (see :mod:`.sinkcheck`), no bytes."""
        assert self._rt.sink is not None
        hub_key = self._rt.state.datahub_key(upload.storage_alias)
        try:
            result = check_sink_upload(self._rt.sink, upload, hub_key.secret)
        except SinkCheckError as error:
            raise InterrogationError(str(error)) from error
        return result.key, result.secret, result

    def _reencrypt(
        self, upload: FileUpload, uploads: _PartUploads
    ) -> tuple[str, bytes, _PartWriter]:
        storage = self._rt.storage
        hub_key = self._rt.state.datahub_key(upload.storage_alias)
        try:
            envelope = storage.read_range(upload.bucket_id, upload.object_id, 0, ENVELOPE_SIZE - 1)
            data_key = open_envelope(envelope, hub_key.secret)
        except (ValueError, ClientError, BotoCoreError) as error:
            raise InterrogationError(f"Cannot open the Crypt4GH envelope: {error}") from error
        new_secret = secrets.token_bytes(32)
        new_key = str(uuid.uuid4())
        bucket = bucket_name(upload.storage_alias, "interrogation")
        writer = _PartWriter(storage, uploads, bucket, new_key)
        crypto = _Reencryptor(data_key, new_secret)
        try:
            stream = storage.open_stream(upload.bucket_id, upload.object_id, ENVELOPE_SIZE)
        except BaseException:
            writer.abort()
            raise
        chunks = _ReadAhead(stream, PART_SIZE)
        try:
            # one S3 read per part: SEGMENTS_PER_PART cipher segments in, the same out
            for chunk in chunks:
                writer.write(crypto.part(chunk))
            decrypted = crypto.decrypted
            if decrypted != upload.decrypted_size:
                raise InterrogationError(
                    f"Decrypted size {decrypted} differs from the declared {upload.decrypted_size}"
                )
            if crypto.digest.hexdigest() != upload.decrypted_sha256:
                raise InterrogationError("Decrypted content checksum mismatch (SHA-256)")
            if writer.size != body_size(decrypted):  # pragma: no cover - format invariant
                raise InterrogationError("Re-encrypted size is inconsistent")
            writer.close()
        except ValueError as error:
            writer.abort()
            raise InterrogationError(f"Decryption failed: {error}") from error
        except BaseException:
            writer.abort()
            raise
        finally:
            chunks.close()
        return new_key, new_secret, writer

"""DCS staging: copy an archived object from permanent storage to the outbox.

Contract §3.4(a) and §5.3: every ``GET /objects/{accession}`` of an unstaged object
requests staging and answers 202; the first request starts a server-side copy
(``<alias>-permanent`` → ``<alias>-outbox``, same key) in a worker thread; the object
counts as staged once the copy is done **and** ``staging_delay`` seconds have passed
since that first request. Once staged it stays staged (never 202 again).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

from ghga_sandbox.c4gh import CIPHER_SEGMENT_SIZE
from ghga_sandbox.faults import FaultPlan
from ghga_sandbox.state import DrsObject, SandboxState
from ghga_sandbox.storage import S3Storage, bucket_name

__all__ = ["Stager"]

log = logging.getLogger(__name__)


class Stager:
    """Background copies to the outbox; :meth:`poll` is called per DCS request."""

    def __init__(
        self,
        state: SandboxState,
        storage: S3Storage,
        *,
        delay: float,
        clock: Callable[[], float],
        max_workers: int = 2,
        faults: FaultPlan | None = None,
    ) -> None:
        self._faults = faults
        self._state = state
        self._storage = storage
        self._delay = delay
        self._clock = clock
        self._lock = threading.Lock()
        self._copies: dict[str, Future[None]] = {}
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="stager")

    def _copy(self, obj: DrsObject) -> None:
        outbox = bucket_name(obj.storage_alias, "outbox")
        self._storage.copy(
            bucket_name(obj.storage_alias, "permanent"), obj.object_id, outbox, obj.object_id
        )
        swap = self._faults is not None and self._faults.take("swap_segments")
        if swap and not self._storage.swap_segments(outbox, obj.object_id, CIPHER_SEGMENT_SIZE):
            log.warning("swap_segments: %s has fewer than two segments", obj.accession)

    def _start(self, obj: DrsObject) -> None:
        self._copies[obj.accession] = self._executor.submit(self._copy, obj)

    def poll(self, accession: str) -> bool:
        """Request staging of ``accession``; return whether it is staged now.

        The first request of an object always returns ``False``. Raises ``KeyError``
        for an unknown accession.
        """
        now = self._clock()
        with self._lock:
            obj = self._state.get_drs_object(accession=accession)
            if obj is None:
                raise KeyError(accession)
            if obj.staged_at is not None:
                return True
            if obj.staging_requested_at is None:
                self._state.put_drs_object(replace(obj, staging_requested_at=now))
                self._start(obj)
                return False
            copy = self._copies.get(accession)
            if copy is None:  # requested before a restart
                self._start(obj)
                return False
            if not copy.done():
                return False
            error = copy.exception()
            if error is not None:
                log.error("staging %s failed: %s; retrying", accession, error)
                self._start(obj)
                return False
            if now < obj.staging_requested_at + self._delay:
                return False
            self._state.put_drs_object(replace(obj, staged_at=now))
            del self._copies[accession]
            return True

    def stage_now(self, accession: str) -> None:
        """Copy synchronously and mark staged (admin helper). ``KeyError`` if unknown."""
        obj = self._state.get_drs_object(accession=accession)
        if obj is None:
            raise KeyError(accession)
        self._copy(obj)
        now = self._clock()
        with self._lock:
            self._state.put_drs_object(
                replace(obj, staging_requested_at=obj.staging_requested_at or now, staged_at=now)
            )

    def shutdown(self) -> None:
        """Stop the worker threads (running copies finish)."""
        self._executor.shutdown(wait=True, cancel_futures=True)

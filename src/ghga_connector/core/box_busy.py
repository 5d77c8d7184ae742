"""Waiting for a free slot when the upload box refuses a new upload (429).

The Upload Controller allows a limited number of open uploads (state ``init``) per file
upload box and answers ``POST /boxes/{box_id}/uploads`` beyond it with 429
``tooManyOpenUploads`` and no ``Retry-After`` (contract §3.3(b)). The limit is shared by
every process on the box (shards of a job array, several hosts). A refused create
therefore waits and tries again, as long as the box makes progress:

* waits start at :data:`FIRST_WAIT` seconds and double up to :data:`MAX_WAIT`, each
  multiplied by a random factor in ``[0.5, 1.5)`` so that processes do not retry in step;
* the upload fails only when the set of open uploads in the box stayed the same for
  :data:`STALL_LIMIT` seconds (nobody finished or started one: the box is stuck, e.g.
  uploads left open by killed processes, which the server discards after 72 hours).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

__all__ = ["FIRST_WAIT", "MAX_WAIT", "STALL_LIMIT", "BoxBusyBackoff"]

#: First wait after a 429 tooManyOpenUploads, in seconds (before jitter).
FIRST_WAIT = 2.0
#: Longest wait between two creates, in seconds (before jitter).
MAX_WAIT = 30.0
#: Seconds without any change in the box's open uploads after which the upload fails.
STALL_LIMIT = 3 * 3600.0


class BoxBusyBackoff:
    """The waits of one file's create requests refused with ``tooManyOpenUploads``.

    Args:
        clock: monotonic seconds (injected for tests).
        rng: source of the jitter (injected for tests).
        stall_limit: seconds without progress in the box before giving up.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        stall_limit: float = STALL_LIMIT,
    ) -> None:
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._stall_limit = stall_limit
        self._attempt = 0
        self._open: frozenset[str] | None = None
        self._since = clock()

    def next_wait(self, open_uploads: frozenset[str] | None) -> float | None:
        """Seconds to wait before the next create, or ``None`` to give up.

        ``open_uploads`` are the ids of the box's uploads in state ``init`` now (``None``
        if the box could not be listed: no evidence either way). Any change since the
        last call counts as progress and restarts the stall clock.
        """
        now = self._clock()
        if open_uploads is not None and open_uploads != self._open:
            self._open = open_uploads
            self._since = now
        if now - self._since >= self._stall_limit:
            return None
        base = min(FIRST_WAIT * 2**self._attempt, MAX_WAIT)
        self._attempt += 1
        return float(base * self._rng.uniform(0.5, 1.5))

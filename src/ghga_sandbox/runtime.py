"""The composition root's product: one bundle of the run's collaborators.

Built once by the CLI (or a test) and handed to :func:`ghga_sandbox.app.create_app`,
which passes it to every route factory. Nothing here is created at import time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ghga_sandbox.config import SandboxSettings
from ghga_sandbox.faults import FaultPlan
from ghga_sandbox.sinks3 import SinkStore
from ghga_sandbox.staging import Stager
from ghga_sandbox.state import SandboxState
from ghga_sandbox.storage import S3Storage

__all__ = ["Runtime"]


@dataclass
class Runtime:
    """Settings, state, storage, fault plan, stager and clock of one sandbox run.

    ``sink`` is the store of ``--s3 sink`` (``None`` for every other S3): the Data Hub
    step checks uploads against it instead of decrypting them.
    """

    settings: SandboxSettings
    state: SandboxState
    storage: S3Storage
    faults: FaultPlan
    stager: Stager
    clock: Callable[[], float] = field(default=time.time)
    sink: SinkStore | None = None

"""What the command line does first, before any other import (start-up time only).

httpx imports its own command-line client (``httpx._main``: click, pygments,
rich.syntax, rich.progress) whenever click is installed, which costs every start of
``ghga-connector`` about 25 ms of CPU; the connector never uses that client. ``None`` in
:data:`sys.modules` makes that one import fail the way httpx expects when click is
missing (httpx then defines a stub ``httpx.main``); nothing else changes.
"""

import sys

if "httpx._main" not in sys.modules:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]

"""Delete calls that the API refuses while something still holds the object (an instance still terminating)."""

from __future__ import annotations

import time
from collections.abc import Callable

from lambda_provider.client import NotFound


def retry_while_busy(call: Callable[[], object], busy: type[Exception], *, deadline: float, interval: float) -> bool:
    """Call until it succeeds (True) or answers NotFound (False: already gone); retry `busy` until `deadline`."""
    while True:
        try:
            call()
            return True
        except NotFound:
            return False
        except busy:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)

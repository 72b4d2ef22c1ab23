"""Delete calls that the API refuses while something still holds the object (an instance still terminating)."""

from __future__ import annotations

import time
from collections.abc import Callable

from lambda_provider.client import LambdaClient, NotFound
from lambda_provider.resources import settings


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


def delete_while_busy(delete: Callable[[LambdaClient], object], busy: type[Exception]) -> None:
    """A provider's delete: retry `busy` (e.g. an instance that used the object still terminates) until the
    configured delete timeout; an object already gone is fine."""
    cfg = settings.current()
    deadline = time.monotonic() + cfg.delete_timeout
    with cfg.client() as client:
        retry_while_busy(lambda: delete(client), busy, deadline=deadline, interval=cfg.poll_interval)

"""Delete calls that the API refuses while something still holds the object (an instance still terminating), or
fails with a retryable error (5xx, 429, no answer) past the transport's own retries: both are retried until the
delete timeout. Deletes are safe to repeat: a delete whose answer was lost answers NotFound the next time."""

from __future__ import annotations

import time
from collections.abc import Callable

from lambda_provider.client import LambdaClient, LambdaError, NotFound
from lambda_provider.client.retry import is_transient
from lambda_provider.resources.settings import ProviderSettings


def retry_while_busy(call: Callable[[], object], busy: type[LambdaError], *, deadline: float, interval: float) -> bool:
    """Call until it succeeds (True) or answers NotFound (False: already gone); retry `busy` and retryable errors
    until `deadline`."""
    while True:
        try:
            call()
            return True
        except NotFound:
            return False
        except LambdaError as exc:
            if not (isinstance(exc, busy) or is_transient(exc)) or time.monotonic() > deadline:
                raise
            time.sleep(interval)


def delete_while_busy(cfg: ProviderSettings, delete: Callable[[LambdaClient], object], busy: type[LambdaError]) -> None:
    """A provider's delete: retry `busy` (e.g. an instance that used the object still terminates) and API trouble
    until the configured delete timeout; an object already gone is fine."""
    deadline = time.monotonic() + cfg.delete_timeout
    with cfg.client() as client:
        retry_while_busy(lambda: delete(client), busy, deadline=deadline, interval=cfg.poll_interval)

"""What a provider says when a Lambda API call fails for good: the object, the cause, and what to run next.

Messages never quote an edge's HTML page (the client summarises it as `HTTP 502 from <path> (HTML error page)`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from lambda_provider.client import LambdaError
from lambda_provider.client.retry import is_transient

RUN_UP_AGAIN = "run `pulumi up` again"
RUN_AGAIN = "run the same `pulumi up` or `pulumi destroy` again"  # deletes run in both (a replacement deletes)


def failure(action: str, exc: LambdaError, next_step: str = RUN_UP_AGAIN) -> RuntimeError:
    """`action` names the object, e.g. "creating SSH key 'sae-dev'"."""
    if is_transient(exc):  # the API kept failing (5xx, 429, no answer) through every retry
        return RuntimeError(f"{action} failed: the Lambda API kept failing ({exc}); {next_step} once it answers")
    return RuntimeError(f"{action} failed: {exc}")


@contextmanager
def reported(action: str, next_step: str = RUN_UP_AGAIN) -> Iterator[None]:
    """Re-raise a client error as `failure(...)`, without the client's traceback."""
    try:
        yield
    except LambdaError as exc:
        raise failure(action, exc, next_step) from None

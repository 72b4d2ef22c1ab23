"""Non-idempotent creates (SSH keys, filesystems, firewall rulesets) made safe to repeat by looking before resending.

No client token exists, so after an ambiguous failure (`retry.is_ambiguous`: a 5xx, a timeout, a dropped answer) the
object may exist although no answer came back. `create_or_adopt` then asks `find` (the caller looks it up by name) and
adopts what it finds; only when nothing is there does it send the create again, `RetryPolicy.delay` apart, at most
`RetryPolicy.attempts` sends. 429s and requests that never left were already retried by the transport. A refusal
that the name is taken (`taken`) also looks first: an earlier send of ours that lost its answer may have taken it.
Instances have their own, slower loop (`InstancesClient.launch`): a new instance can lag in the list.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from lambda_provider.client.errors import ApiError, LambdaError
from lambda_provider.client.retry import is_ambiguous
from lambda_provider.client.transport import RetryPolicy

T = TypeVar("T")
log = logging.getLogger("lambda_provider.client")


def create_or_adopt(
    send: Callable[[], T],
    find: Callable[[], T | None],
    *,
    retry: RetryPolicy,
    what: str,
    taken: tuple[type[ApiError], ...] = (),
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`send()`'s answer, or what `find()` sees after an ambiguous failure or a `taken` refusal.

    Raises the last error when every send failed ambiguously and nothing appeared, or at once on a definite refusal.
    """
    attempt = 0
    while True:
        try:
            return send()
        except taken:
            found = find()
            if found is None:
                raise
            log.info("%s: the name is taken by a matching object (an earlier send of ours); adopting it", what)
            return found
        except LambdaError as exc:
            if not is_ambiguous(exc):
                raise
            found = find()
            if found is not None:
                log.info("%s: the create's answer was lost (%s) but it happened; adopting it", what, exc)
                return found
            if attempt + 1 >= retry.attempts:
                raise
            wait = retry.delay(attempt)
            log.info("%s: create failed (%s) and nothing was created; sending it again in %.2fs", what, exc, wait)
            sleep(wait)
            attempt += 1

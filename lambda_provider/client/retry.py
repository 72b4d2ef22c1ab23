"""May I send this again? One answer for the whole client: the transport's retries, the launch that reconciles
by tag (`InstancesClient.launch`), the creates that look before they resend (`reconcile.create_or_adopt`) and the
providers' delete loops all ask here.

A failed request ended in one of three ways:

- `NOT_DONE`: the server provably did nothing: a 429 (`RateLimited`), or a connection that failed before the
  request left (`ConnectionFailed` with `sent` false).
- `MAYBE_DONE`: no success came back, but the server may have acted: a 5xx, a `provider/*` code or a garbled
  answer (`ServerError`), or a connection lost after the request was sent.
- `REFUSED`: a definite answer that the same request would get again: every other 4xx.

Hence: anything `NOT_DONE` may be sent again; an idempotent request may also be sent again after `MAYBE_DONE`; a
non-idempotent one (launch, create) after `MAYBE_DONE` is *ambiguous*: look for what it may have made first.
"""

from __future__ import annotations

from enum import Enum

from lambda_provider.client.errors import ConnectionFailed, LambdaError, RateLimited, ServerError


class Outcome(Enum):
    NOT_DONE = "the server did nothing"
    MAYBE_DONE = "the server may have acted"
    REFUSED = "a definite refusal"


def outcome(exc: LambdaError) -> Outcome:
    if isinstance(exc, RateLimited):
        return Outcome.NOT_DONE
    if isinstance(exc, ConnectionFailed):
        return Outcome.MAYBE_DONE if exc.sent else Outcome.NOT_DONE
    if isinstance(exc, ServerError):
        return Outcome.MAYBE_DONE
    return Outcome.REFUSED


def may_resend(exc: LambdaError, *, idempotent: bool) -> bool:
    """Whether sending the same request again is safe (the transport's retry rule)."""
    found = outcome(exc)
    return found is Outcome.NOT_DONE or (idempotent and found is Outcome.MAYBE_DONE)


def is_ambiguous(exc: LambdaError) -> bool:
    """True when a non-idempotent request (launch, create) may have been carried out although no success came back:
    look for what it made before sending it again."""
    return outcome(exc) is Outcome.MAYBE_DONE


def is_transient(exc: LambdaError) -> bool:
    """True when the same idempotent request may succeed later (the API was failing, not refusing)."""
    return outcome(exc) is not Outcome.REFUSED

"""One retry classification (lambda_provider/client/retry.py) for the transport, the launch and the creates: each
kind of failure the client raises, fed as the transport builds it, and what may be sent again after it."""

from __future__ import annotations

import pytest

from lambda_provider.client import errors
from lambda_provider.client.retry import Outcome, is_ambiguous, is_transient, may_resend, outcome


def from_api(status: int, code: str = "") -> errors.LambdaError:
    body = f'{{"error": {{"code": "{code}", "message": "m"}}}}' if code else ""
    return errors.error_from_response(status, body, "application/json", "/instance-operations/launch")


CASES = [
    ("429", from_api(429, "global/rate-limited"), Outcome.NOT_DONE),
    ("refused before sending", errors.ConnectionFailed("refused", sent=False), Outcome.NOT_DONE),
    ("502 page", errors.error_from_response(502, b"<html>bad gateway</html>", "text/html"), Outcome.MAYBE_DONE),
    ("provider code", from_api(400, "provider/internal-unavailable"), Outcome.MAYBE_DONE),
    ("reset after sending", errors.ConnectionFailed("reset", sent=True), Outcome.MAYBE_DONE),
    ("no capacity", from_api(400, "instance-operations/launch/insufficient-capacity"), Outcome.REFUSED),
    ("bad key", from_api(401, "global/invalid-api-key"), Outcome.REFUSED),
    ("not found", from_api(404), Outcome.REFUSED),
    ("launch lost", errors.AmbiguousLaunch("unknown"), Outcome.REFUSED),
]


@pytest.mark.parametrize(("what", "exc", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_failure_has_one_outcome(what: str, exc: errors.LambdaError, expected: Outcome) -> None:
    assert outcome(exc) is expected


@pytest.mark.parametrize(("what", "exc", "expected"), CASES, ids=[c[0] for c in CASES])
def test_an_idempotent_request_is_resent_unless_refused(what: str, exc: errors.LambdaError, expected: Outcome) -> None:
    assert may_resend(exc, idempotent=True) is (expected is not Outcome.REFUSED)


@pytest.mark.parametrize(("what", "exc", "expected"), CASES, ids=[c[0] for c in CASES])
def test_a_launch_is_resent_only_when_nothing_happened(what: str, exc: errors.LambdaError, expected: Outcome) -> None:
    assert may_resend(exc, idempotent=False) is (expected is Outcome.NOT_DONE)


@pytest.mark.parametrize(("what", "exc", "expected"), CASES, ids=[c[0] for c in CASES])
def test_ambiguous_means_the_server_may_have_acted(what: str, exc: errors.LambdaError, expected: Outcome) -> None:
    assert is_ambiguous(exc) is (expected is Outcome.MAYBE_DONE)


@pytest.mark.parametrize(("what", "exc", "expected"), CASES, ids=[c[0] for c in CASES])
def test_transient_means_not_refused(what: str, exc: errors.LambdaError, expected: Outcome) -> None:
    assert is_transient(exc) is (expected is not Outcome.REFUSED)

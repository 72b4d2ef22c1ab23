"""HTTP transport: requests session, Bearer auth, timeouts, pacing, typed errors, and retries.

Retry rule (`retry.may_resend`, lambda_provider/client/retry.py): idempotent requests are retried on 429, 5xx and
connection failures with exponential backoff and full jitter, up to `RetryPolicy.attempts` tries; a 429 (the server
did nothing and asks us to slow down) goes on being retried past them until `RetryPolicy.rate_limit_budget` seconds
have passed since the first try. Non-idempotent requests (launch, create) are retried only when the server provably
did nothing: a 429, or a connection that failed before the request was sent. Everything else surfaces to the caller,
who must reconcile (`InstancesClient.launch`, `reconcile.create_or_adopt`).
"""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Any

import requests

from lambda_provider.client.errors import (
    ApiError,
    ConnectionFailed,
    LambdaError,
    RateLimited,
    ServerError,
    describe_body,
    error_from_response,
)
from lambda_provider.client.ratelimit import RateLimiter, shared_limiter
from lambda_provider.client.retry import may_resend

DEFAULT_BASE_URL = "https://cloud.lambda.ai/api/v1"
USER_AGENT = "lambda-sae-pulumi/0.1"
log = logging.getLogger("lambda_provider.client")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # total tries, the first included
    base_delay: float = 1.0
    max_delay: float = 30.0
    rate_limit_budget: float = 0.0  # seconds since the first try during which 429s are retried past `attempts`

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Full-jitter exponential backoff; a server-sent Retry-After is a floor."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** min(attempt, 32)))
        wait = random.uniform(0, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait


def resolve_base_url(base_url: str | None = None) -> str:
    url = base_url or os.environ.get("LAMBDA_API_URL") or DEFAULT_BASE_URL
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"Lambda API URL must start with http:// or https://, got {url!r}")
    return url


def _was_sent(exc: requests.exceptions.RequestException) -> bool:
    """False only when the connection failed before any byte of the request left."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False
    if isinstance(exc, requests.exceptions.ConnectionError):
        seen: BaseException | None = exc
        while seen is not None:
            name = type(seen).__name__
            if name in {"NewConnectionError", "ConnectionRefusedError", "NameResolutionError"}:
                return False
            seen = (
                seen.__context__
                or seen.__cause__
                or (seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None)
            )
    return True


def _retry_after(response: requests.Response) -> float | None:
    raw = response.headers.get("Retry-After", "").strip()
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


class Transport:
    """Sends one API request with pacing and retries; returns the `data` payload of the answer."""

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        if not api_key:
            raise ValueError(
                "no Lambda API key: set the secret stack config `lambda:apiKey` "
                "(pulumi config set --secret lambda:apiKey ...) or the LAMBDA_API_KEY environment variable"
            )
        self.base_url = resolve_base_url(base_url)
        self.timeout = timeout
        self.limiter = limiter or shared_limiter()
        self.retry = retry or RetryPolicy()
        self._session = session or requests.Session()
        self._session.headers.update(
            {
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            }
        )

    def __repr__(self) -> str:  # never show the key
        return f"Transport({self.base_url!r})"

    def close(self) -> None:
        self._session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        idempotent: bool | None = None,
        launch: bool = False,
    ) -> Any:
        if idempotent is None:
            idempotent = method.upper() in {"GET", "PUT", "DELETE", "HEAD"}
        attempt = 0
        started = time.monotonic()
        while True:
            try:
                return self._send_once(method, path, body=body, params=params, launch=launch)
            except LambdaError as exc:
                if not may_resend(exc, idempotent=idempotent):
                    raise
                wait = self.retry.delay(attempt, getattr(exc, "retry_after", None))
                within_budget = (
                    isinstance(exc, RateLimited) and time.monotonic() - started + wait <= self.retry.rate_limit_budget
                )
                if attempt + 1 >= self.retry.attempts and not within_budget:
                    raise
                if isinstance(exc, RateLimited):
                    self.limiter.penalize(wait)
                log.info("%s %s failed (%s); retry %d in %.2fs", method, path, type(exc).__name__, attempt + 1, wait)
                time.sleep(wait)
                attempt += 1

    def _send_once(self, method: str, path: str, *, body: Any, params: dict[str, str] | None, launch: bool) -> Any:
        self.limiter.acquire(launch=launch)
        url = self.base_url + path
        try:
            response = self._session.request(method, url, json=body, params=params, timeout=self.timeout)
        except requests.exceptions.RequestException as exc:
            sent = _was_sent(exc)
            raise ConnectionFailed(f"{method} {path}: {type(exc).__name__}: {exc}", sent=sent) from None
        log.debug("%s %s -> %d", method, path, response.status_code)
        if response.status_code >= 400:
            error = error_from_response(
                response.status_code, response.content, response.headers.get("Content-Type", ""), path
            )
            error.retry_after = _retry_after(response)  # type: ignore[attr-defined]
            raise error
        try:
            payload = response.json() if response.content else {}
        except ValueError:
            detail = describe_body(
                response.status_code, path, response.content, response.headers.get("Content-Type", "")
            )
            raise ServerError(f"answer is not JSON: {detail}", status=response.status_code) from None
        if isinstance(payload, dict) and "data" in payload:
            return payload["data"]
        return payload


__all__ = ["ApiError", "DEFAULT_BASE_URL", "RetryPolicy", "Transport", "resolve_base_url"]

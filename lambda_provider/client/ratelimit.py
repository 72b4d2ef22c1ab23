"""One process-wide pacer for the account-wide API limits (~1 request/s, 1 launch per 12 s).

Every client in a process shares `shared_limiter()`, so four provider threads in the dynamic-provider host do not
each spend the account's budget. Intervals are settable (tests run with 0) via `configure()` or the environment
variables LAMBDA_MIN_REQUEST_INTERVAL / LAMBDA_MIN_LAUNCH_INTERVAL (seconds).
"""

from __future__ import annotations

import os
import threading
import time

DEFAULT_MIN_REQUEST_INTERVAL = 1.0
DEFAULT_MIN_LAUNCH_INTERVAL = 12.0


class RateLimiter:
    """Reserves send slots: each request waits until `min_request_interval` after the previous one."""

    def __init__(
        self,
        min_request_interval: float = DEFAULT_MIN_REQUEST_INTERVAL,
        min_launch_interval: float = DEFAULT_MIN_LAUNCH_INTERVAL,
    ) -> None:
        self._lock = threading.Lock()
        self._next_request = 0.0
        self._next_launch = 0.0
        self.min_request_interval = min_request_interval
        self.min_launch_interval = min_launch_interval

    def configure(self, *, min_request_interval: float | None = None, min_launch_interval: float | None = None) -> None:
        with self._lock:
            if min_request_interval is not None:
                self.min_request_interval = max(0.0, float(min_request_interval))
            if min_launch_interval is not None:
                self.min_launch_interval = max(0.0, float(min_launch_interval))

    def acquire(self, *, launch: bool = False) -> float:
        """Block until this request may be sent; returns the seconds waited."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_request)
            if launch:
                start = max(start, self._next_launch)
                self._next_launch = start + self.min_launch_interval
            self._next_request = start + self.min_request_interval
        wait = start - now
        if wait > 0:
            time.sleep(wait)
        return wait

    def finished_launch(self) -> None:
        """Space the next launch from this one's answer too: the server counts from when a launch *arrived*, which
        may be well after it was sent, so pacing from send times alone can still draw a 429 on a slow link."""
        with self._lock:
            self._next_launch = max(self._next_launch, time.monotonic() + self.min_launch_interval)

    def penalize(self, seconds: float) -> None:
        """Push every later request back (after a 429 the account is over its budget)."""
        with self._lock:
            self._next_request = max(self._next_request, time.monotonic() + seconds)


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return max(0.0, float(raw))
    except ValueError as exc:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from exc


_SHARED = RateLimiter(
    _env_float("LAMBDA_MIN_REQUEST_INTERVAL", DEFAULT_MIN_REQUEST_INTERVAL),
    _env_float("LAMBDA_MIN_LAUNCH_INTERVAL", DEFAULT_MIN_LAUNCH_INTERVAL),
)


def shared_limiter() -> RateLimiter:
    return _SHARED

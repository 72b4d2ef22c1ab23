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
# Launches are spaced from their *send* times, plus this share of the interval: the server counts from when a launch
# arrives, so what can draw a 429 is only the jitter between two requests' send-to-arrival delays, not the answer's
# latency (live: ~9 s, which pacing from answers would add to every 12 s gap). A 429 is retried (the server did
# nothing); the margin keeps that rare.
LAUNCH_MARGIN = 0.1


class RateLimiter:
    """Reserves send slots at least `min_request_interval` apart, launches `min_launch_interval` apart.

    A launch reserves its slot ahead of time (up to an interval away); other requests take free slots before it
    instead of queueing behind it, so the four provider threads' listings and catalogue reads (what the next launch
    needs first) go out while a launch waits for its turn."""

    def __init__(
        self,
        min_request_interval: float = DEFAULT_MIN_REQUEST_INTERVAL,
        min_launch_interval: float = DEFAULT_MIN_LAUNCH_INTERVAL,
    ) -> None:
        self._lock = threading.Lock()
        self._reserved: list[float] = []  # send times taken, sorted
        self._blocked_until = 0.0
        self._next_launch = 0.0
        self.min_request_interval = min_request_interval
        self.min_launch_interval = min_launch_interval

    def configure(self, *, min_request_interval: float | None = None, min_launch_interval: float | None = None) -> None:
        with self._lock:
            if min_request_interval is not None:
                self.min_request_interval = max(0.0, float(min_request_interval))
            if min_launch_interval is not None:
                self.min_launch_interval = max(0.0, float(min_launch_interval))

    def _free_slot(self, earliest: float) -> float:
        """The first time >= earliest at least one request interval away from every reserved send."""
        gap, start = self.min_request_interval, earliest
        for taken in self._reserved:
            if abs(start - taken) < gap:
                start = taken + gap
            elif taken > start:
                break
        return start

    def acquire(self, *, launch: bool = False) -> float:
        """Block until this request may be sent; returns the seconds waited."""
        with self._lock:
            now = time.monotonic()
            self._reserved = [t for t in self._reserved if t > now - self.min_request_interval]
            earliest = max(now, self._blocked_until)
            if launch:
                earliest = max(earliest, self._next_launch)
            start = self._free_slot(earliest)
            if launch:
                self._next_launch = start + self.min_launch_interval * (1.0 + LAUNCH_MARGIN)
            self._reserved.append(start)
            self._reserved.sort()
        wait = start - now
        if wait > 0:
            time.sleep(wait)
        return wait

    def penalize(self, seconds: float) -> None:
        """Push every later request back (after a 429 the account is over its budget)."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, time.monotonic() + seconds)


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

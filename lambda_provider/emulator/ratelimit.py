"""Per-account rate limits of the real API (../shared/lambda-cloud/NOTES.md §2): ~1 request/s overall, 1 launch per
12 s, both x time_scale."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .catalog import RateLimitConfig


@dataclass
class _Bucket:
    tokens: float
    updated: float
    last_launch: float | None = None


class RateLimiter:
    def __init__(self, config: RateLimitConfig, time_scale: float) -> None:
        self.enabled = config.enabled
        self._config = config
        # Scaling time by `time_scale` means scaling rates by its inverse.
        self._refill_per_second = config.requests_per_second / max(time_scale, 1e-9)
        self._launch_interval = config.launch_interval_seconds * time_scale
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def allow(self, account_id: str, is_launch: bool, now: float) -> bool:
        """Spend one request token (and the launch slot for launches); False means answer 429."""
        if not self.enabled:
            return True
        with self._lock:
            bucket = self._buckets.get(account_id)
            if bucket is None:
                bucket = self._buckets[account_id] = _Bucket(tokens=float(self._config.burst), updated=now)
            bucket.tokens = min(
                float(self._config.burst), bucket.tokens + (now - bucket.updated) * self._refill_per_second
            )
            bucket.updated = now
            if bucket.tokens < 1.0:
                return False
            if is_launch and bucket.last_launch is not None and now - bucket.last_launch < self._launch_interval:
                return False
            bucket.tokens -= 1.0
            if is_launch:
                bucket.last_launch = now
            return True

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()

"""The emulator as the provider tests see it: its public API plus its control API (faults, capacity, states)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests

from lambda_provider.client import LambdaClient, RateLimiter, ReconcilePolicy, RetryPolicy


@dataclass
class Api:
    """The emulator as the tests see it: the public API plus its control API (faults, capacity, states)."""

    base_url: str
    control_url: str
    api_key: str

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = requests.request(method, f"{self.control_url.rstrip('/')}{path}", json=body, timeout=10)
        assert resp.status_code == 200, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json()

    def add_fault(self, **rule: Any) -> dict[str, Any]:
        return self.control("POST", "/faults", rule)

    def fault(self, rule_id: str) -> dict[str, Any]:
        return next(r for r in self.control("GET", "/faults")["rules"] if r["id"] == rule_id)

    def clear_faults(self) -> None:
        self.control("DELETE", "/faults")

    def set_capacity(self, instance_type: str, region: str, available: int) -> None:
        self.control("PUT", "/capacity", {"instance_type": instance_type, "region": region, "available": available})

    def all_instances(self) -> list[dict[str, Any]]:
        """Every instance ever launched (terminated ones included), with emulator internals."""
        return self.control("GET", "/state")["instances"]

    def live_instances(self) -> list[dict[str, Any]]:
        return [i for i in self.all_instances() if i["status"] not in ("terminated", "terminating", "preempted")]

    def client(self, **kwargs: Any) -> LambdaClient:
        kwargs.setdefault("limiter", RateLimiter(0.0, 0.0))
        kwargs.setdefault("retry", RetryPolicy(attempts=6, base_delay=0.02, max_delay=0.2))
        kwargs.setdefault("reconcile", ReconcilePolicy(list_attempts=3, list_interval=0.1))
        kwargs.setdefault("timeout", 5.0)
        return LambdaClient(self.api_key, self.base_url, **kwargs)

    def stack_config(self, **extra: Any) -> dict[str, Any]:
        """Stack config as the engine sends it to the provider host (secrets already decrypted)."""
        return {
            "lambda:apiKey": self.api_key, "lambda:apiUrl": self.base_url, "lambda:minRequestInterval": "0",
            "lambda:minLaunchInterval": "0", "lambda:pollInterval": "0.05", "lambda:retryBaseDelay": "0.02",
            "lambda:reconcileInterval": "0.1", "lambda:retryAttempts": "10", "lambda:deleteTimeout": "30",
            "lambda:requestTimeout": "5",
            **extra,
        }

    def wait_for(self, predicate: Any, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "condition not reached in time"
            time.sleep(0.05)

"""The emulator as the provider tests see it: its public API plus its control API (faults, capacity, states)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lambda_provider.client import LambdaClient, RateLimiter, ReconcilePolicy, RetryPolicy
from lambda_provider.emulator.testing import EmulatorHandle, wait_for


@dataclass
class Api:
    """A running emulator with what the provider tests ask of it: fault counters, instance lists, fast clients."""

    emulator: EmulatorHandle

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    @property
    def api_key(self) -> str:
        return self.emulator.api_key

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.emulator.control(method, path, body)

    def add_fault(self, **rule: Any) -> dict[str, Any]:
        return self.emulator.inject_fault(**rule)

    def fault(self, rule_id: str) -> dict[str, Any]:
        return next(r for r in self.control("GET", "/faults")["rules"] if r["id"] == rule_id)

    def clear_faults(self) -> None:
        self.emulator.clear_faults()

    def set_capacity(self, instance_type: str, region: str, available: int) -> None:
        self.emulator.set_capacity(instance_type, region, available)

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
            "lambda:apiKey": self.api_key,
            "lambda:apiUrl": self.base_url,
            "lambda:minRequestInterval": "0",
            "lambda:minLaunchInterval": "0",
            "lambda:pollInterval": "0.05",
            "lambda:retryBaseDelay": "0.02",
            "lambda:reconcileInterval": "0.1",
            "lambda:retryAttempts": "10",
            "lambda:deleteTimeout": "30",
            "lambda:requestTimeout": "5",
            "lambda:rateLimitBudget": "10",
            **extra,
        }

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 20.0) -> None:
        wait_for(predicate, timeout, "condition not reached in time", interval=0.05)

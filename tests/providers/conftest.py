"""Fixtures for the provider tests: one fast emulator per module (real HTTP over loopback), reset per test."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from lambda_provider.client import LambdaClient, RateLimiter, ReconcilePolicy, RetryPolicy
from lambda_provider.resources import lookups, settings

REPO_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "secret_sae-provider-test_5f3c9e1d2b7a4c60.8e1f2d3c4b5a69780f1e2d3c"
TIME_SCALE = 0.01
# Terminated records stay listed for the whole test, so tests can count every launch that ever happened.
EMULATOR_CONFIG: dict[str, Any] = {"lifecycle": {"terminated_retention_seconds": 1_000_000}}


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
            "lambda:reconcileInterval": "0.1", "lambda:deleteTimeout": "30", "lambda:requestTimeout": "5",
            **extra,
        }

    def wait_for(self, predicate: Any, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "condition not reached in time"
            time.sleep(0.05)


@dataclass
class _CliEmulator:
    base_url: str
    control_url: str
    api_key: str


@contextlib.contextmanager
def _cli_emulator(data_dir: Path) -> Iterator[_CliEmulator]:
    """The emulator through its own CLI (used while `lambda_provider.emulator.testing` is absent)."""
    config = data_dir / "config.yaml"
    config.write_text(yaml.safe_dump(EMULATOR_CONFIG))
    proc = subprocess.Popen(
        [sys.executable, "-m", "lambda_provider.emulator", "--data-dir", str(data_dir / "data"), "--port", "0",
         "--time-scale", str(TIME_SCALE), "--api-key", API_KEY, "--no-rate-limit", "--config", str(config),
         "--log-level", "WARNING"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(3))
        yield _CliEmulator(lines["LAMBDA_API_URL"], lines["LAMBDA_EMULATOR_CONTROL_URL"], lines["LAMBDA_API_KEY"])
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proc.stdout.close()


@pytest.fixture(scope="module")
def emulator_handle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    data_dir = tmp_path_factory.mktemp("emulator")
    try:
        from lambda_provider.emulator import testing
    except ImportError:
        with _cli_emulator(data_dir) as handle:
            yield handle
        return
    config = data_dir / "config.yaml"
    config.write_text(yaml.safe_dump(EMULATOR_CONFIG))
    with testing.running_emulator(data_dir / "data", time_scale=TIME_SCALE, rate_limits=False, config=config,
                                  api_key=API_KEY) as handle:
        yield handle


@pytest.fixture
def api(emulator_handle: Any) -> Iterator[Api]:
    api = Api(emulator_handle.base_url, emulator_handle.control_url, emulator_handle.api_key)
    api.control("POST", "/reset")
    api.control("PUT", "/rate-limits", {"enabled": False})
    lookups.clear()
    settings.reset()
    yield api
    api.clear_faults()

"""Provider settings: the stack config keys below, each with an environment fallback, as one `ProviderSettings`.

`LambdaProvider.configure` (lambda_provider/resources/provider.py) builds them from the stack config and keeps them
on the provider object, never in a pickle; scripts build them with `settings_from` (the CLI, the drift check).

Stack config keys (namespace `lambda:`), each with its environment variable fallback:

| config key                   | env                            | default                         |
|------------------------------|--------------------------------|---------------------------------|
| `lambda:apiKey` (secret!)    | LAMBDA_API_KEY                 | none: required                  |
| `lambda:apiUrl`              | LAMBDA_API_URL                 | https://cloud.lambda.ai/api/v1  |
| `lambda:minRequestInterval`  | LAMBDA_MIN_REQUEST_INTERVAL    | 1.0 s                           |
| `lambda:minLaunchInterval`   | LAMBDA_MIN_LAUNCH_INTERVAL     | 12.0 s                          |
| `lambda:pollInterval`        | LAMBDA_POLL_INTERVAL           | 5.0 s                           |
| `lambda:deleteTimeout`       | LAMBDA_DELETE_TIMEOUT          | 900 s                           |
| `lambda:retryBaseDelay`      | LAMBDA_RETRY_BASE_DELAY        | 1.0 s                           |
| `lambda:retryAttempts`       | LAMBDA_RETRY_ATTEMPTS          | 6                               |
| `lambda:reconcileInterval`   | LAMBDA_RECONCILE_INTERVAL      | 15.0 s (x8 listings)            |
| `lambda:requestTimeout`      | LAMBDA_REQUEST_TIMEOUT         | 30 s                            |

Set the key with `pulumi config set --secret lambda:apiKey <key>`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lambda_provider.client import LambdaClient, ReconcilePolicy, RetryPolicy, shared_limiter

CONFIG_NAMESPACE = "lambda"
PROBE_TIMEOUT, PROBE_ATTEMPTS = 10.0, 3

_KEYS: dict[str, tuple[str, str]] = {  # field -> (config key, env var)
    "api_key": ("apiKey", "LAMBDA_API_KEY"),
    "api_url": ("apiUrl", "LAMBDA_API_URL"),
    "min_request_interval": ("minRequestInterval", "LAMBDA_MIN_REQUEST_INTERVAL"),
    "min_launch_interval": ("minLaunchInterval", "LAMBDA_MIN_LAUNCH_INTERVAL"),
    "poll_interval": ("pollInterval", "LAMBDA_POLL_INTERVAL"),
    "delete_timeout": ("deleteTimeout", "LAMBDA_DELETE_TIMEOUT"),
    "retry_base_delay": ("retryBaseDelay", "LAMBDA_RETRY_BASE_DELAY"),
    "retry_attempts": ("retryAttempts", "LAMBDA_RETRY_ATTEMPTS"),
    "rate_limit_budget": ("rateLimitBudget", "LAMBDA_RATE_LIMIT_BUDGET"),
    "reconcile_interval": ("reconcileInterval", "LAMBDA_RECONCILE_INTERVAL"),
    "request_timeout": ("requestTimeout", "LAMBDA_REQUEST_TIMEOUT"),
}


@dataclass(frozen=True)
class ProviderSettings:
    api_key: str = field(default="", repr=False)
    api_url: str | None = None
    min_request_interval: float = 1.0
    min_launch_interval: float = 12.0
    poll_interval: float = 5.0
    delete_timeout: float = 900.0
    retry_base_delay: float = 1.0
    retry_attempts: int = 6
    rate_limit_budget: float = 120.0  # a request answered 429 keeps retrying this long, past retry_attempts
    reconcile_interval: float = 15.0
    request_timeout: float = 30.0

    def client(self) -> LambdaClient:
        shared_limiter().configure(
            min_request_interval=self.min_request_interval, min_launch_interval=self.min_launch_interval
        )
        return LambdaClient(
            self.api_key,
            self.api_url,
            timeout=self.request_timeout,
            retry=RetryPolicy(
                attempts=self.retry_attempts,
                base_delay=self.retry_base_delay,
                max_delay=max(30.0 * self.retry_base_delay, self.retry_base_delay),
                rate_limit_budget=self.rate_limit_budget,
            ),
            reconcile=ReconcilePolicy(list_interval=self.reconcile_interval),
        )

    def probe_client(self) -> LambdaClient:
        """A client for a look-up that must stay short (a diff per node at every preview): few tries, short timeout."""
        shared_limiter().configure(
            min_request_interval=self.min_request_interval, min_launch_interval=self.min_launch_interval
        )
        return LambdaClient(
            self.api_key,
            self.api_url,
            timeout=min(self.request_timeout, PROBE_TIMEOUT),
            retry=RetryPolicy(
                attempts=max(1, min(self.retry_attempts, PROBE_ATTEMPTS)),
                base_delay=self.retry_base_delay,
                max_delay=self.retry_base_delay * 2,
            ),
        )


def _number(name: str, raw: Any, cast: Callable[[Any], Any]) -> Any:
    try:
        value = cast(raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"provider setting {name} must be a number, got {raw!r}") from exc
    if value < 0:
        raise ValueError(f"provider setting {name} must not be negative, got {raw!r}")
    return value


def settings_from(lookup: Callable[[str], Any]) -> ProviderSettings:
    """Build settings from `lookup(config_key)` (full `lambda:` key) with environment fallbacks."""
    values: dict[str, Any] = {}
    defaults = ProviderSettings()
    for attr, (key, env) in _KEYS.items():
        raw = lookup(f"{CONFIG_NAMESPACE}:{key}")
        if raw is None or raw == "":
            raw = os.environ.get(env) or None
        if raw is None:
            continue
        default = getattr(defaults, attr)
        if isinstance(default, (bool, str)) or default is None:
            values[attr] = str(raw)
        else:
            values[attr] = _number(f"{CONFIG_NAMESPACE}:{key} / {env}", raw, type(default))
    return ProviderSettings(**values)

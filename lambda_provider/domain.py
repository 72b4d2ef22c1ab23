"""The domain words the plan, the PR preview and the policy pack share: the stack budget (`lambda-sae:budget`) and the
worst-case price of a node (its most expensive acceptable type).

The fleet program validates the budget strictly (lambda_provider/fleet/config.py refuses a stack without one);
these readers see the stack config as `pulumi config --json` gives it, so they take what is there and say what is not.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

BUDGET_CONFIG_KEY = "lambda-sae:budget"
CAP_VARIABLE = "LAMBDA_SAE_CAP_USD_PER_HOUR"  # the repository's $/hour cap, a CI variable (docs/gitops.md)


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class StackBudget:
    """`lambda-sae:budget` ({maxUsdPerHour, maxHours}); a value that is absent, secret or not a number is None."""

    max_usd_per_hour: float | None
    max_hours: float | None

    def capped(self, cap_usd_per_hour: float | None) -> tuple[float | None, str]:
        """The $/hour limit that applies, the lower of the stack's and the repository cap, and where it comes from."""
        if cap_usd_per_hour is not None and (self.max_usd_per_hour is None or cap_usd_per_hour < self.max_usd_per_hour):
            return cap_usd_per_hour, f"the repository cap {CAP_VARIABLE}"
        return self.max_usd_per_hour, f"{BUDGET_CONFIG_KEY}.maxUsdPerHour"


def stack_budget(config: Mapping[str, Any]) -> StackBudget:
    """The budget in a stack config mapping (`<project>:<key>` -> value; an object may come JSON-encoded)."""
    raw = config.get(BUDGET_CONFIG_KEY)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = None
    if not isinstance(raw, Mapping):
        return StackBudget(None, None)
    return StackBudget(_number(raw.get("maxUsdPerHour")), _number(raw.get("maxHours")))


def worst_case_price(prices: Mapping[str, int], instance_types: Iterable[str]) -> tuple[int, str] | None:
    """(cents per hour, type) of the most expensive acceptable type with a known price: what a node not yet launched
    may cost, and what the budget checks assume; None when no type has a price."""
    known = [(prices[t], t) for t in instance_types if t in prices]
    return max(known) if known else None

"""The domain's vocabulary, one home for each word the fleet, the resources, the client, the plan and the policy pack
share: placements, Lambda's name and tag limits, the instance status sets, the stack budget (`lambda-sae:budget`)
and the worst-case price of a node (its most expensive acceptable type).

The fleet program validates the budget strictly (lambda_provider/fleet/config.py refuses a stack without one);
`stack_budget` reads the stack config as `pulumi config --json` gives it, so it takes what is there and says what is
not. The emulator (lambda_provider/emulator/) keeps its own copies of the API's limits on purpose: it is the oracle
the client is tested against, so it must not share the client's assumptions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Names and tags as Lambda limits them (../shared/lambda-cloud/NOTES.md): instances, SSH keys and firewall rulesets
# take names of at most NAME_MAX characters; filesystem names are shorter and restricted to FILESYSTEM_NAME_PATTERN.
NAME_MAX = 64
FILESYSTEM_NAME_MAX = 60
FILESYSTEM_NAME_PATTERN = re.compile(r"^[a-zA-Z]+[0-9a-zA-Z-]*$")
TAG_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9-:]+$")
TAG_KEY_MAX = 55
TAG_VALUE_MAX = 128
RESERVED_TAG_PREFIX = "pulumi-"  # the ownership tags (lambda_provider/resources/naming.py); no user tag may use it

# Instance statuses: TERMINAL ones never come back (and do not bill); GONE_OR_GOING adds `terminating`.
TERMINAL_STATUSES = frozenset({"terminated", "preempted"})
GONE_OR_GOING_STATUSES = TERMINAL_STATUSES | {"terminating"}

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


@dataclass(frozen=True)
class Placement:
    """One acceptable (instance type, region) of a node; region None: any region with capacity."""

    instance_type: str
    region: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The form the `Instance` resource takes in its `placements` input."""
        return {"instance_type": self.instance_type, "region": self.region}

    to_input = to_dict  # the name the fleet component calls it by

    def accepts(self, instance_type: str, region: str) -> bool:
        return self.instance_type == instance_type and self.region in (None, region)

    def __str__(self) -> str:
        return f"{self.instance_type} in {self.region or 'any region'}"


def parse_placements(raw: Any) -> list[Placement]:
    """Placements from an `Instance`'s `placements` input: a list of {instance_type, region?} in preference order."""
    if not isinstance(raw, list):
        return []
    out = []
    for item in raw:
        if isinstance(item, dict) and isinstance(item.get("instance_type"), str):
            region = item.get("region")
            out.append(Placement(item["instance_type"], region if isinstance(region, str) and region else None))
    return out


def accepts(placements: Iterable[Placement], instance_type: str, region: str) -> bool:
    return any(p.accepts(instance_type, region) for p in placements)


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

"""Money: the plan's worst-case hourly price from the catalogue (checked against the budget before anything is
launched) and the running fleet's actual price from the chosen instance types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lambda_provider.client.models import InstanceTypeAvailability
from lambda_provider.domain import worst_case_price
from lambda_provider.fleet.config import FleetConfig


class OverBudget(ValueError):
    pass


@dataclass(frozen=True)
class PlanCost:
    hourly_usd: float  # worst case: every node on its most expensive acceptable type
    max_hours: float
    lines: tuple[str, ...]

    @property
    def projected_usd(self) -> float:
        return self.hourly_usd * self.max_hours


def plan_cost(config: FleetConfig, catalogue: Mapping[str, InstanceTypeAvailability]) -> PlanCost:
    hourly, lines = 0.0, []
    for group in config.node_groups:
        prices = {}
        for placement in group.placements:
            item = catalogue.get(placement.instance_type)
            if item is None:
                raise ValueError(
                    f"nodeGroups {group.name}: instance type {placement.instance_type!r} is not in the "
                    f"catalogue; known types: {', '.join(sorted(catalogue))}"
                )
            prices[placement.instance_type] = item.instance_type.price_cents_per_hour
        worst = worst_case_price(prices, prices)
        if worst is None:  # a group has at least one placement, and each has a price by now
            raise ValueError(f"nodeGroups {group.name}: no placements to price")
        cents, worst_type = worst
        group_hourly = group.count * cents / 100.0
        hourly += group_hourly
        lines.append(
            f"{group.name}: {group.count} x up to ${cents / 100.0:.2f}/h ({worst_type}) = ${group_hourly:.2f}/h"
        )
    return PlanCost(round(hourly, 2), config.budget.max_hours, tuple(lines))


def check_budget(config: FleetConfig, cost: PlanCost) -> None:
    budget = config.budget
    if cost.hourly_usd > budget.max_usd_per_hour + 1e-9:
        raise OverBudget(
            f"the plan costs up to ${cost.hourly_usd:.2f}/h, over budget.maxUsdPerHour ${budget.max_usd_per_hour:.2f}"
            f"/h ({'; '.join(cost.lines)}); projected ${cost.projected_usd:.2f} over budget.maxHours "
            f"{budget.max_hours:g} h. Nothing was launched. Lower nodeGroups[*].count, drop expensive placements, "
            "or raise budget.maxUsdPerHour"
        )


def fleet_hourly_usd(price_cents_per_hour: list[int | float | None]) -> float:
    return round(sum(float(p or 0) for p in price_cents_per_hour) / 100.0, 2)

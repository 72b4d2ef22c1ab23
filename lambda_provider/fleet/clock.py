"""`FleetClock`: remembers when the fleet was created, so `expires_at` (created + max hours) stays stable across
updates; changing max hours moves `expires_at` but never the creation time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult


def expires_at(created_at: str, max_hours: float) -> str:
    created = datetime.fromisoformat(created_at)
    return (created + timedelta(hours=max_hours)).isoformat(timespec="seconds")


class FleetClockProvider(ResourceProvider):
    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=olds.get("max_hours") != news.get("max_hours"))

    def create(self, props: dict[str, Any]) -> CreateResult:
        created = datetime.now(UTC).isoformat(timespec="seconds")
        return CreateResult(
            f"clock-{created}",
            {
                "max_hours": props["max_hours"],
                "created_at": created,
                "expires_at": expires_at(created, float(props["max_hours"])),
            },
        )

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        created = olds["created_at"]
        return UpdateResult(
            {
                "max_hours": news["max_hours"],
                "created_at": created,
                "expires_at": expires_at(created, float(news["max_hours"])),
            }
        )


class FleetClock(pulumi.dynamic.Resource, module="fleet", name="FleetClock"):
    created_at: pulumi.Output[str]
    expires_at: pulumi.Output[str]

    def __init__(self, resource_name: str, *, max_hours: float, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            FleetClockProvider(), resource_name, {"max_hours": max_hours, "created_at": None, "expires_at": None}, opts
        )

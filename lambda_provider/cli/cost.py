"""`lambda-sae cost [STACK | TYPE xN --hours H]`: live prices (GET /instance-types), the plan's worst case against
its budget, and what a running stack has spent so far; or a quick estimate for N nodes of one type."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from lambda_provider.cli import money, workspace
from lambda_provider.client import LambdaError
from lambda_provider.client.models import InstanceTypeAvailability
from lambda_provider.fleet.config import FleetConfigError, parse_fleet_config
from lambda_provider.fleet.cost import plan_cost

COUNT = re.compile(r"^x(\d+)$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what",
        nargs="*",
        metavar="STACK | TYPE xN",
        help="a stack name (default: --stack), or an instance type and a count, e.g. gpu_1x_gh200 x3",
    )
    parser.add_argument("--hours", type=float, help="hours to price a TYPE xN estimate for (default 1)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")


def catalogue(stack: str) -> tuple[str, dict[str, InstanceTypeAvailability]]:
    try:
        with workspace.api_client(stack) as client:
            return client.base_url, client.instance_types.list()
    except LambdaError as exc:
        raise workspace.WorkspaceError(
            f"cannot read live prices (GET /instance-types) for stack {stack!r}: {exc}; "
            "check the API key and URL (`lambda-sae cost --stack dev` uses the emulator)"
        ) from None


def price(types: Mapping[str, InstanceTypeAvailability], name: str) -> InstanceTypeAvailability:
    if name not in types:
        raise workspace.WorkspaceError(
            f"instance type {name!r} is not in the live catalogue; known types: {', '.join(sorted(types))}"
        )
    return types[name]


def estimate(stack: str, words: list[str], hours: float | None) -> dict[str, Any]:
    count = 1
    if len(words) == 2 and COUNT.match(words[1]):
        count = int(COUNT.match(words[1]).group(1))  # type: ignore[union-attr]
    elif len(words) != 1:
        raise workspace.WorkspaceError(
            f"cannot read {' '.join(words)!r}: give `cost STACK` or `cost TYPE xN "
            "--hours H`, e.g. `lambda-sae cost gpu_1x_gh200 x3 --hours 5`"
        )
    url, types = catalogue(stack)
    item = price(types, words[0])
    each = item.instance_type.price_cents_per_hour / 100.0
    hours = 1.0 if hours is None else hours
    return {
        "mode": "estimate",
        "api_url": url,
        "instance_type": item.name,
        "count": count,
        "hours": hours,
        "usd_per_hour_each": each,
        "usd_per_hour": round(each * count, 2),
        "total_usd": round(each * count * hours, 2),
        "regions_with_capacity": [r.name for r in item.regions_with_capacity],
    }


def project_config(stack: str) -> dict[str, Any]:
    prefix = f"{workspace.project_name()}:"
    return {k[len(prefix) :]: v for k, v in workspace.stack_config(stack).items() if k.startswith(prefix)}


def running(stack: str) -> dict[str, Any] | None:
    try:
        out = workspace.outputs(stack)
    except workspace.WorkspaceError:
        return None
    if not out.get("created_at"):
        return None
    hourly = float(out.get("hourly_cost_usd") or 0.0)
    now = datetime.now(UTC)
    return {
        "usd_per_hour": hourly,
        "created_at": out["created_at"],
        "expires_at": out.get("expires_at"),
        "hours": money.hours_since(str(out["created_at"]), now),
        "spent_usd": money.spent_usd(hourly, str(out["created_at"]), now),
        "projected_usd": out.get("projected_cost_usd"),
        "nodes": len(out.get("nodes") or []),
    }


def stack_cost(stack: str) -> dict[str, Any]:
    try:
        config = parse_fleet_config(project_config(stack), api_url=None, repo_root=workspace.repo_root())
    except FleetConfigError as exc:
        raise workspace.WorkspaceError(f"Pulumi.{stack}.yaml: {exc}") from None
    url, types = catalogue(stack)
    groups = []
    for group in config.node_groups:
        options = []
        for placement in group.placements:
            item = price(types, placement.instance_type)
            region = placement.region or config.filesystem.region
            options.append(
                {
                    "instance_type": item.name,
                    "region": region,
                    "usd_per_hour_each": item.instance_type.price_cents_per_hour / 100.0,
                    "capacity_now": item.has_capacity_in(region),
                }
            )
        groups.append({"name": group.name, "count": group.count, "placements": options})
    plan = plan_cost(config, types)
    return {
        "mode": "stack",
        "stack": stack,
        "target": config.target,
        "api_url": url,
        "groups": groups,
        "plan_worst_usd_per_hour": plan.hourly_usd,
        "plan_worst_total_usd": round(plan.projected_usd, 2),
        "max_hours": config.budget.max_hours,
        "budget_usd_per_hour": config.budget.max_usd_per_hour,
        "running": running(stack),
    }


def render(data: dict[str, Any]) -> str:
    if data["mode"] == "estimate":
        where = ", ".join(data["regions_with_capacity"]) or "no region right now"
        return (
            f"{data['instance_type']} x{data['count']} for {data['hours']:g} h: ${data['usd_per_hour_each']:.2f}/h "
            f"each, ${data['usd_per_hour']:.2f}/h, ${data['total_usd']:.2f} in all (live price; capacity now in: "
            f"{where})"
        )
    lines = [f"Stack {data['stack']!r} ({data['target']}), live prices from {data['api_url']}:"]
    for group in data["groups"]:
        for i, option in enumerate(group["placements"]):
            head = f"{group['name']}: {group['count']} x" if i == 0 else " " * (len(group["name"]) + 2) + "or"
            capacity = "capacity now" if option["capacity_now"] else "no capacity now"
            lines.append(
                f"  {head} {option['instance_type']} ({option['region']}) ${option['usd_per_hour_each']:.2f}/h"
                f" each, {capacity}"
            )
    lines.append(
        f"  plan worst case: ${data['plan_worst_usd_per_hour']:.2f}/h, ${data['plan_worst_total_usd']:.2f} over "
        f"budget.maxHours {data['max_hours']:g} h (budget.maxUsdPerHour ${data['budget_usd_per_hour']:.2f})"
    )
    live = data.get("running")
    if live is None:
        lines.append(f"  not running: no stack outputs (`lambda-sae up --stack {data['stack']}` starts it)")
    else:
        lines.append(
            f"  running: {live['nodes']} nodes at ${live['usd_per_hour']:.2f}/h, spent "
            f"{money.usd(live['spent_usd'])} so far ({money.duration(live['hours'])} since "
            f"{live['created_at']}); ${float(live['projected_usd'] or 0):.2f} if it runs to its expiry "
            f"{live['expires_at']}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    words = list(args.what)
    if len(words) == 1 and workspace.stack_file(words[0]).is_file():
        data = stack_cost(words[0])
    elif words:
        data = estimate(args.stack, words, args.hours)
    else:
        data = stack_cost(args.stack)
    print(json.dumps(data, indent=2) if args.json else render(data))
    return 0

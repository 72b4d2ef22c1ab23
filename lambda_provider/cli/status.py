"""`lambda-sae status`: the nodes (API status and phase), training progress read live from the nodes, the hourly
rate, spent so far and the expiry."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from lambda_provider.cli import money, nodes, progress, workspace
from lambda_provider.client import LambdaError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")


def api_statuses(stack: str) -> dict[str, str]:
    """{instance name: API status}; {} when the API cannot be read (status still shows what the nodes say)."""
    try:
        with workspace.api_client(stack) as client:
            return {i.name or i.id: i.status for i in client.instances.list()}
    except (LambdaError, OSError, workspace.WorkspaceError):
        return {}


def report(stack: str) -> dict[str, Any]:
    fleet = nodes.load(stack)
    live = progress.read(fleet)
    api = api_statuses(stack)
    out = fleet.outputs
    hourly = float(out.get("hourly_cost_usd") or 0.0)
    now = datetime.now(UTC)
    created = str(out.get("created_at") or "")
    status = progress.head_status(live)
    return {
        "stack": stack,
        "target": out.get("target"),
        "nodes": [
            {
                "node": p.node.node,
                "name": p.node.name,
                "rank": p.node.rank,
                "type": p.node.type,
                "region": p.node.region,
                "ip": p.node.ip,
                "api_status": api.get(p.node.name, "unknown"),
                "phase": p.phase,
                **({"error": p.error} if p.error else {}),
            }
            for p in live
        ],
        "training": status,
        "training_running": any(p.running for p in live),
        "hourly_usd": hourly,
        "created_at": created,
        "hours": money.hours_since(created, now) if created else 0.0,
        "spent_usd": money.spent_usd(hourly, created, now) if created else 0.0,
        "expires_at": out.get("expires_at"),
        "run_dir": fleet.run_dir,
    }


def render(data: dict[str, Any]) -> str:
    lines = [f"Fleet {data['stack']!r} ({data.get('target') or '?'}):"]
    for n in data["nodes"]:
        lines.append(
            f"  {n['node']:<10} rank {n['rank']}  {n['type']:<18} {n['region']:<11} {n['ip']:<15} "
            f"{n['api_status']:<9} {n['phase']}"
        )
        if n.get("error"):
            lines.append(f"    {n['error']}")
    lines.append(f"  training: {progress.training_line(data['training'], data['training_running'])}")
    lines.append(f"  run dir: {data['run_dir']}")
    expiry = data.get("expires_at") or "?"
    left = ""
    if data.get("expires_at"):
        remaining = (datetime.fromisoformat(str(data["expires_at"])) - datetime.now(UTC)).total_seconds() / 3600
        left = f" (in {money.duration(remaining)})" if remaining > 0 else " (passed)"
    lines.append(
        f"  cost: ${data['hourly_usd']:.2f}/h, spent {money.usd(data['spent_usd'])} so far "
        f"({money.duration(data['hours'])} since {data['created_at']})"
    )
    lines.append(f"  expires {expiry}{left}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    data = report(args.stack)
    print(json.dumps(data, indent=2) if args.json else render(data))
    return 0

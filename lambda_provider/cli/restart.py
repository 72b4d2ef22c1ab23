"""`lambda-sae restart NODE`: restart one node's instance through the API (POST /instance-operations/restart)."""

from __future__ import annotations

import argparse
import sys

from lambda_provider.cli import workspace
from lambda_provider.cli.operation import state_resources, tracked_instances


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("node", metavar="NODE", help="the node's name, e.g. node-0")


def run(args: argparse.Namespace) -> int:
    tracked = tracked_instances(state_resources(workspace.stack(args.stack)))
    ids = [instance_id for instance_id, (node, _) in tracked.items() if node == args.node]
    if not ids:
        nodes = ", ".join(sorted(node for node, _ in tracked.values())) or "none"
        print(f"stack {args.stack} has no node {args.node!r} (its nodes: {nodes})", file=sys.stderr)
        return 1
    with workspace.api_client(args.stack) as client:
        data = client.transport.request(
            "POST", "/instance-operations/restart", body={"instance_ids": ids}, idempotent=False
        )
    restarted = data.get("restarted_instances") if isinstance(data, dict) else None
    status = restarted[0].get("status", "?") if isinstance(restarted, list) and restarted else "?"
    print(
        f"restarted {args.node} (instance {ids[0]}, status {status}); its processes, the trainer included, were "
        f"stopped by the restart"
    )
    return 0

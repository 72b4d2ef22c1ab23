"""What the fleet's parts hand on, built from the instances and `FleetNodes`' per-node status: the SSH connection
of each node (host key pinned), the training run's nodes, and the `nodes` stack output (its shape is what the CLI
and the tests read: node, name, type, region, ip, private_ip, node_rank, ssh)."""

from __future__ import annotations

from typing import Any

import pulumi

from lambda_provider.fleet.fleet_nodes import FleetNodes
from lambda_provider.fleet.key import FleetKey
from lambda_provider.fleet.nodes import Node

SSH_USER = "ubuntu"


def _record(status: dict[str, Any] | None, node: str) -> dict[str, Any]:
    return (status or {}).get(node) or {}


def connection(node: Node, fleet: FleetNodes, key: FleetKey) -> pulumi.Output[dict[str, Any]]:
    """The node's SSH connection as the steps after its ready gate use it (pinning the host key the gate saw)."""
    return pulumi.Output.all(status=fleet.status, private_key=key.private_key).apply(
        lambda v: {
            "host": _record(v["status"], node.name).get("ip"),
            "port": int(_record(v["status"], node.name).get("ssh_port") or 22),
            "user": SSH_USER,
            "private_key": v["private_key"],
            "private_key_path": key.private_key_path,
            "ready": bool(_record(v["status"], node.name).get("ok")),
            "status": _record(v["status"], node.name).get("instance_status"),
            "host_key": _record(v["status"], node.name).get("host_key"),
        }
    )


def run_node(
    node: Node, connection: pulumi.Output[dict[str, Any]], head: str, fleet: FleetNodes, launch_env: dict[str, Any]
) -> pulumi.Output[dict[str, Any]]:
    """One entry of the TrainingRun's `nodes`: connection and launch environment (MASTER_ADDR: the head's address)."""
    return pulumi.Output.all(connection=connection, status=fleet.status).apply(
        lambda v: {
            "node": node.name,
            "connection": v["connection"],
            "environment": {**launch_env, "MASTER_ADDR": _record(v["status"], head).get("private_ip")},
        }
    )


def node_output(node: Node, fleet: FleetNodes, key: FleetKey) -> pulumi.Output[dict[str, Any]]:
    inst = node.instance
    return pulumi.Output.all(name=inst.name, type=inst.instance_type, region=inst.region, status=fleet.status).apply(
        lambda v: {
            "node": node.name,
            "name": v["name"],
            "type": v["type"],
            "region": v["region"],
            "ip": _record(v["status"], node.name).get("ip"),
            "private_ip": _record(v["status"], node.name).get("private_ip"),
            "node_rank": node.rank,
            "ssh": (
                f"ssh -i {key.path_hint} -p {int(_record(v['status'], node.name).get('ssh_port') or 22)} "
                f"{SSH_USER}@{_record(v['status'], node.name).get('ip')}"
            ),
        }
    )


def head_private_ip(fleet: FleetNodes, head: str) -> pulumi.Output[str | None]:
    return fleet.status.apply(lambda status: _record(status, head).get("private_ip"))

"""The fleet's nodes: one `Instance` per node of each group (launched without waiting for the boot), and what
`FleetNodes` needs to know of each to bring it up (its instance, what its type promises, its setup environment)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi

from lambda_provider.fleet.config import FleetConfig
from lambda_provider.resources import Instance


@dataclass(frozen=True)
class Node:
    name: str  # `<group>-<index>`, the Instance's resource name
    rank: int
    instance: Instance
    nproc: int  # trainer processes on this node
    boot_timeout_seconds: float | None  # the group's; None: by GPU count (resources/instance.py)


def expected_arch(architecture: str | None) -> str:
    return "aarch64" if architecture in ("arm64", "aarch64") else "x86_64"


def gpu_model(gpu_description: str | None) -> str:
    """'1x GH200 (96 GB)' or 'GH200 (96 GB)' -> 'GH200' (what nvidia-smi's name contains)."""
    text = re.sub(r"^\d+x\s+", "", gpu_description or "")
    return text.split(" (")[0].strip() or "NVIDIA"


def launch_nodes(
    config: FleetConfig,
    *,
    ssh_key_name: pulumi.Input[str],
    filesystem_name: pulumi.Input[str],
    ruleset_ids: list[pulumi.Output[str]],
    opts: pulumi.ResourceOptions,
) -> list[Node]:
    nodes: list[Node] = []
    for group in config.node_groups:
        for index in range(group.count):
            name = f"{group.name}-{index}"
            instance = Instance(
                name,
                ssh_key_name=ssh_key_name,
                file_system_names=[filesystem_name],
                placements=[p.to_input() for p in group.placements],
                boot_timeout_seconds=group.boot_timeout_seconds,
                firewall_ruleset_ids=ruleset_ids,
                wait_for_boot=False,  # FleetNodes waits for every node's boot together
                opts=opts,
            )
            nproc = 1 if config.training.allow_cpu else group.gpus_per_node
            nodes.append(Node(name, len(nodes), instance, nproc, group.boot_timeout_seconds))
    return nodes


def node_spec(node: Node, config: FleetConfig) -> pulumi.Output[dict[str, Any]]:
    """One entry of FleetNodes' `nodes` input (keyed by node name: a preview shows a node's change under it)."""
    inst = node.instance
    return pulumi.Output.all(
        instance_id=inst.instance_id,
        architecture=inst.architecture,
        gpus=inst.gpu_count,
        gpu_description=inst.gpu_description,
    ).apply(
        lambda v: {
            "instance_id": v["instance_id"],
            "rank": node.rank,
            "boot_timeout_seconds": node.boot_timeout_seconds,
            "gpus": v["gpus"],
            "expect": {
                "EXPECT_ARCH": expected_arch(v["architecture"]),
                "EXPECT_GPUS": v["gpus"],
                "EXPECT_GPU_MODEL": gpu_model(v["gpu_description"]),
            },
            "setup_environment": {
                "FLEET_EXPECT_GPUS": v["gpus"],
                "FLEET_ALLOW_CPU": int(config.training.allow_cpu),
            },
        }
    )

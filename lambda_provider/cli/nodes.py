"""SSH access to a stack's nodes for the read verbs: addresses and keys from the stack outputs, host keys pinned to
what each node's ready gate recorded (`status.<node>.host_key` of the fleet's FleetNodes resource in the stack state;
states written before FleetNodes: the `host_key` output of the node's `<node>-ready` NodeStep)."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from lambda_provider.cli import workspace
from lambda_provider.fleet.remote import Connection, HostKeyMismatch, NodeUnreachable, connect
from lambda_provider.fleet.remote import run as remote_run

NODE_STEP_TYPE = "pulumi-python:dynamic/fleet:NodeStep"
FLEET_NODES_TYPE = "pulumi-python:dynamic/fleet:FleetNodes"
CONNECT_TIMEOUT = 15.0
T = TypeVar("T")


@dataclass(frozen=True)
class Node:
    node: str  # the fleet's node name (node-0)
    name: str  # the instance name on Lambda
    rank: int
    ip: str
    port: int
    user: str
    key_path: str  # as the outputs print it (`~/.ssh/lambda-sae-<stack>` for a generated key)
    host_key: str | None
    type: str = ""
    region: str = ""


@dataclass(frozen=True)
class Fleet:
    stack: str
    outputs: dict[str, Any]
    nodes: tuple[Node, ...]
    private_key: str | None  # the generated key's private half (secret output); None: the user's own key file

    @property
    def run_dir(self) -> str:
        return str((self.outputs.get("filesystem") or {}).get("run_dir") or "")

    def node(self, wanted: str | None) -> Node:
        """A node by fleet name (node-0), instance name or rank; the head (rank 0) when `wanted` is None."""
        if not self.nodes:
            raise workspace.WorkspaceError(
                f"stack {self.stack!r} has no nodes: run `lambda-sae up --stack {self.stack}`"
            )
        if wanted is None:
            return min(self.nodes, key=lambda n: n.rank)
        for node in self.nodes:
            if wanted in (node.node, node.name, str(node.rank)):
                return node
        names = ", ".join(n.node for n in self.nodes)
        raise workspace.WorkspaceError(f"stack {self.stack!r} has no node {wanted!r}; its nodes: {names}")

    def connection(self, node: Node) -> Connection:
        if node.host_key is None:
            raise workspace.WorkspaceError(
                f"node {node.node}: no pinned SSH host key in stack {self.stack!r} (its ready gate has not passed): "
                f"run `lambda-sae up --stack {self.stack}`"
            )
        key_path = None if self.private_key else str(Path(node.key_path).expanduser())
        return Connection(node.ip, node.port, node.user, self.private_key, key_path, node.host_key)


def parse_ssh_command(command: str) -> tuple[str, int, str, str]:
    """`ssh -i KEY -p PORT USER@HOST` (the `ssh` output of a node) -> (key path, port, user, host)."""
    words = shlex.split(command)
    key, port, target = "", 22, ""
    i = 1
    while i < len(words):
        if words[i] == "-i" and i + 1 < len(words):
            key, i = words[i + 1], i + 2
        elif words[i] == "-p" and i + 1 < len(words):
            port, i = int(words[i + 1]), i + 2
        elif words[i] == "-o" and i + 1 < len(words):
            i += 2
        else:
            target, i = words[i], i + 1
    user, _, host = target.rpartition("@")
    return key, port, user or "ubuntu", host


def pinned_host_keys(deployment: dict[str, Any]) -> dict[str, str]:
    """{node: host key line} from the ready gates in an exported stack state."""
    keys = {}
    for resource in deployment.get("resources") or []:
        outputs = resource.get("outputs") or {}
        if resource.get("type") == FLEET_NODES_TYPE and isinstance(outputs.get("status"), dict):
            for node, record in outputs["status"].items():
                if isinstance(record, dict) and isinstance(record.get("host_key"), str):
                    keys[str(node)] = record["host_key"]
            continue
        ready_gate = resource.get("type") == NODE_STEP_TYPE and str(resource.get("urn", "")).endswith("-ready")
        if ready_gate and isinstance(outputs.get("host_key"), str) and outputs.get("node"):
            keys[str(outputs["node"])] = outputs["host_key"]
    return keys


def load(stack_name: str) -> Fleet:
    stack = workspace.stack(stack_name)
    outputs = {key: value.value for key, value in stack.outputs().items()}
    host_keys = pinned_host_keys(stack.export_stack().deployment or {})
    nodes = []
    for raw in outputs.get("nodes") or []:
        key_path, port, user, host = parse_ssh_command(str(raw.get("ssh") or ""))
        nodes.append(
            Node(
                str(raw["node"]),
                str(raw.get("name") or raw["node"]),
                int(raw.get("node_rank") or 0),
                str(raw.get("ip") or host),
                port,
                user,
                key_path,
                host_keys.get(str(raw["node"])),
                str(raw.get("type") or ""),
                str(raw.get("region") or ""),
            )
        )
    if not outputs:
        raise workspace.WorkspaceError(
            f"stack {stack_name!r} has no outputs (never brought up, or destroyed): run "
            f"`lambda-sae up --stack {stack_name}`"
        )
    return Fleet(stack_name, outputs, tuple(sorted(nodes, key=lambda n: n.rank)), outputs.get("ssh_private_key"))


def run_path_env(fleet: Fleet, node: Node) -> str:
    """Shell prefix that sets RUN (the run dir as seen on the node: the emulator mounts under the instance root)."""
    return f'RUN="${{LAMBDA_INSTANCE_ROOT:-}}"{shlex.quote(fleet.run_dir)}; RANK={node.rank}; '


def run(fleet: Fleet, node: Node, command: str, timeout: float = 60.0) -> tuple[int, str]:
    """(exit status, output tail) of `command` on `node`; a WorkspaceError naming the node when it cannot be reached."""
    try:
        result = remote_run(fleet.connection(node), command, timeout=timeout, connect_timeout=CONNECT_TIMEOUT)
    except (NodeUnreachable, HostKeyMismatch) as exc:
        raise workspace.WorkspaceError(f"node {node.node}: {exc}") from None
    return result.exit_status, result.output_tail


async def with_connection(fleet: Fleet, node: Node, body: Callable[[asyncssh.SSHClientConnection], Awaitable[T]]) -> T:
    try:
        ssh = await connect(fleet.connection(node), CONNECT_TIMEOUT)
    except (NodeUnreachable, HostKeyMismatch) as exc:
        raise workspace.WorkspaceError(f"node {node.node}: {exc}") from None
    async with ssh:
        return await body(ssh)


def on_node(fleet: Fleet, node: Node, body: Callable[[asyncssh.SSHClientConnection], Awaitable[T]]) -> T:
    return asyncio.run(with_connection(fleet, node, body))

"""Live training progress read from the nodes: each node's launcher status (`launch_node.sh status`: running, and
the run's status.json, which the head writes on the shared filesystem)."""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass
from typing import Any

import asyncssh

from lambda_provider.cli import nodes
from lambda_provider.cli.workspace import WorkspaceError
from lambda_provider.fleet.node_step import parse_result
from lambda_provider.fleet.remote import run_on
from lambda_provider.fleet.scripts import LAUNCHER
from training.changes import CACHE_TASK


@dataclass(frozen=True)
class NodeProgress:
    node: nodes.Node
    reachable: bool
    running: bool = False
    crashed: bool = False
    status: dict[str, Any] | None = None  # the run's status.json as this node sees it
    error: str = ""

    @property
    def phase(self) -> str:
        if not self.reachable:
            return "unreachable"
        if self.running:
            return "training"
        if self.crashed:
            return "crashed"
        state = (self.status or {}).get("state")
        return {"finished": "finished", "stopped": "stopped", "failed": "failed"}.get(str(state), "idle")


def status_command(fleet: nodes.Fleet, node: nodes.Node) -> str:
    return f"RUN_PATH={shlex.quote(fleet.run_dir)} NODE_RANK={node.rank} {LAUNCHER} status"


async def _one(fleet: nodes.Fleet, node: nodes.Node) -> NodeProgress:
    async def body(ssh: asyncssh.SSHClientConnection) -> NodeProgress:
        result = await run_on(ssh, status_command(fleet, node), timeout=30)
        parsed = parse_result(result.output_tail)
        status = parsed.get("status") if isinstance(parsed.get("status"), dict) else None
        return NodeProgress(
            node,
            True,
            bool(parsed.get("running")),
            bool(parsed.get("crashed")),
            status,
            "" if "running" in parsed else result.output_tail.strip()[-200:],
        )

    try:
        return await nodes.with_connection(fleet, node, body)
    except (WorkspaceError, OSError, asyncssh.Error) as exc:
        return NodeProgress(node, False, error=str(exc))


def read(fleet: nodes.Fleet) -> list[NodeProgress]:
    async def every() -> list[NodeProgress]:
        return list(await asyncio.gather(*(_one(fleet, node) for node in fleet.nodes)))

    return asyncio.run(every())


def head_status(progress: list[NodeProgress]) -> dict[str, Any]:
    for item in sorted(progress, key=lambda p: p.node.rank):
        if item.status:
            return item.status
    return {}


def eta(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def training_line(status: dict[str, Any], running: bool) -> str:
    """`running, step 120/977 (12%) | 45,712 vec/s | FVU 0.1697 | L0 8.0 | ETA 0:00:20`, from a status.json."""
    if not status:
        return "starting (the trainer is up, no status.json yet)" if running else "not started (no status.json yet)"
    state = str(status.get("state") or "unknown")
    if running and state not in ("running", "starting"):
        state = f"{state} (processes still up)"
    parts = [state]
    step, total = status.get("step"), status.get("total_steps")
    unit = "chunk" if status.get("task") == CACHE_TASK else "step"
    if isinstance(step, int | float) and isinstance(total, int | float) and total:
        parts[0] += f", {unit} {int(step)}/{int(total)} ({100 * step / total:.0f}%)"
    if status.get("reason"):
        parts[0] += f" ({status['reason']})"
    metrics = status.get("metrics") or {}
    if isinstance(metrics.get("vectors_per_second"), int | float):
        parts.append(f"{metrics['vectors_per_second']:,.0f} vec/s")
    if isinstance(metrics.get("fvu"), int | float):
        parts.append(f"FVU {metrics['fvu']:.4f}")
    if isinstance(metrics.get("l0"), int | float):
        parts.append(f"L0 {metrics['l0']:.1f}")
    if state == "running" and "eta_seconds" in metrics:
        parts.append(f"ETA {eta(metrics['eta_seconds'])}")
    if status.get("task") == CACHE_TASK:
        cached = status.get("vectors")
        parts.append(f"activation cache, {cached:,} vectors" if isinstance(cached, int) else "activation cache")
    return " | ".join(parts)

"""`TrainingRun`: the fleet-level view of a run -- make sure every node's trainer runs (restarting the whole
torchrun world when part of it died), optionally wait (bounded) for the run to end, and report its status and latest
metrics read from the shared filesystem. Fails naming the node and the cause, with the tail of that node's log.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import asyncssh
import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from lambda_provider.fleet.node_step import StepFailed, parse_result, with_environment
from lambda_provider.fleet.remote import Connection, HostKeyMismatch, NodeUnreachable, connect, run_on
from lambda_provider.fleet.scripts import LAUNCHER, LOG_TAIL, SUMMARY
from lambda_provider.resources.values import is_unknown

POLL_SECONDS = 2.0
EXIT_GRACE_SECONDS = 30.0
SETTLE_SECONDS = 30.0
DONE_STATES = ("finished", "stopped")
METRIC_KEYS = ("step", "fvu", "l0", "dead_fraction", "loss", "vectors_per_second")


class _Node:
    def __init__(self, raw: dict[str, Any], ssh: asyncssh.SSHClientConnection) -> None:
        self.name: str = raw["node"]
        self.env: dict[str, Any] = raw.get("environment") or {}
        self.ssh = ssh

    async def sh(self, script: str, timeout: float = 180.0) -> tuple[int, str]:
        result = await run_on(self.ssh, with_environment(script, self.env), timeout=timeout)
        return result.exit_status, result.output_tail

    async def status(self) -> dict[str, Any]:
        code, out = await self.sh(f"{LAUNCHER} status")
        if code != 0:
            raise StepFailed(f"node {self.name}: cannot read the trainer status: {out[-500:]}")
        return parse_result(out)

    async def log_tail(self, lines: int = 25) -> str:
        _, out = await self.sh(LOG_TAIL.format(lines=lines))
        return out


KILLED = re.compile(r"Signal \d+ \((?!SIGTERM)SIG\w+\)")  # SIGTERM is how torchrun stops the bystanders
# What a rank prints when another rank died under it: a symptom, not a cause.
PEER_LOST = re.compile(r"Connection (closed|reset) by peer|Broken pipe|DistNetworkError|DistBackendError|"
                       r"ProcessGroup(Gloo|NCCL)|NCCL (error|WARN)|gloo/transport", re.IGNORECASE)


async def _settled_tail(node: _Node) -> str:
    """The node's log tail once its trainer has exited (bounded): when a worker dies, the other ranks fail at once,
    and torchrun writes which worker died and how (e.g. `Signal 9 (SIGKILL)`) only as it exits."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while (await node.status()).get("running") and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    return await node.log_tail()


def _first_cause(tails: list[str]) -> int:
    """Which node's log shows what ended the run: a worker killed by a signal, else an error of its own (not a lost
    peer), else the head. Every rank of a torchrun world fails when one dies, so the first failure seen is often a
    bystander's."""
    for i, tail in enumerate(tails):
        if KILLED.search(tail):
            return i
    for i, tail in enumerate(tails):
        if re.search(r"Traceback|Error", tail) and not PEER_LOST.search(tail):
            return i
    return 0


async def _run_failed(nodes: list[_Node], seen_on: _Node, seen: str) -> StepFailed:
    tails = list(await asyncio.gather(*(_settled_tail(n) for n in nodes)))
    index = _first_cause(tails)
    culprit, tail = nodes[index], tails[index]
    killed = KILLED.search(tail)
    if killed:
        cause = f"a trainer worker was killed ({killed.group(0)})"
    elif culprit is seen_on:
        cause = seen
    else:
        cause = "its trainer failed"
    also = "" if culprit is seen_on else f"; seen first on node {seen_on.name}: {seen}"
    return StepFailed(f"node {culprit.name}: {cause}{also}; the run stopped on every node and the next `pulumi up` "
                      f"restarts it from the last checkpoint\n--- log tail (node {culprit.name}) ---\n{tail}")


async def _open(nodes: list[dict[str, Any]], timeout: float) -> list[_Node]:
    opened = []
    for raw in nodes:
        try:
            ssh = await connect(Connection.from_props(raw["connection"]), timeout)
        except (NodeUnreachable, HostKeyMismatch) as exc:
            for node in opened:
                node.ssh.close()
            what = "node not reachable: " if isinstance(exc, NodeUnreachable) else ""
            raise StepFailed(f"node {raw['node']}: training: {what}{exc}") from None
        opened.append(_Node(raw, ssh))
    return opened


def _report(status: dict[str, Any], summary: dict[str, Any] | None) -> dict[str, Any]:
    run = status.get("status") or {}
    metrics = run.get("metrics") or {}
    report = {"state": run.get("state") or status.get("state") or "none", "reason": run.get("reason"),
              "step": run.get("step"), "total_steps": run.get("total_steps"),
              "latest_metrics": {k: metrics.get(k) for k in METRIC_KEYS if k in metrics}}
    if summary:
        report["summary"] = {k: summary.get(k) for k in ("fvu", "l0", "dead_fraction", "steps", "vectors_per_second",
                                                          "wall_seconds", "recovery", "world_size", "ce_loss_recovered",
                                                          "delta_lm_loss") if k in summary}
    if status.get("lingered"):
        report["note"] = (f"the run finished but its processes had not exited {EXIT_GRACE_SECONDS:.0f} s later; "
                          "the fleet stopped them")
    return report


async def _summary(head: _Node) -> dict[str, Any] | None:
    code, out = await head.sh(SUMMARY)
    try:
        return json.loads(out) if out.strip() else None
    except ValueError:
        return None


async def _ensure_running(nodes: list[_Node]) -> None:
    statuses = [await n.status() for n in nodes]
    head_state = statuses[0].get("state")
    if head_state == "finished" and statuses[0].get("config_same"):
        return
    if all(s.get("running") for s in statuses):
        return
    # Part of the torchrun world died: the rest cannot continue, so stop them (checkpoint) and start everyone.
    await _stop_running(nodes, statuses, "could not stop the trainer for a restart")
    for node in nodes:
        code, out = await node.sh(f"{LAUNCHER} start", timeout=300)
        if code != 0:
            raise StepFailed(f"node {node.name}: training launch failed: {out[-1500:]}")


async def _wait(nodes: list[_Node], wait_seconds: float) -> dict[str, Any]:
    head = nodes[0]
    deadline = time.monotonic() + wait_seconds
    done_since: float | None = None
    while True:
        status = await head.status()
        run = status.get("status") or {}
        state = run.get("state")
        now = time.monotonic()
        if state == "failed":
            raise await _run_failed(nodes, head, f"training failed: {run.get('error') or run.get('reason')}")
        if state in DONE_STATES:
            # The head writes the SAE, the summary and then this state before its processes tear down (DDP's
            # barrier, torchrun's exit barrier across nodes): the run is done; its exit is waited for only briefly,
            # then what is left of it is stopped, so that nothing lingers on the nodes.
            done_since = done_since if done_since is not None else now
            if not status.get("running") or wait_seconds <= 0:
                return status
            if now - done_since > EXIT_GRACE_SECONDS or now > deadline:
                await _stop_running(nodes, [await n.status() for n in nodes],
                                    "the run finished but its trainer did not exit, and stopping it failed")
                return {**status, "running": False, "lingered": True}
        else:
            for node in nodes:
                node_status = status if node is head else await node.status()
                if not node_status.get("running") and (await head.status()).get("state") not in DONE_STATES:
                    raise await _run_failed(nodes, node, "the trainer exited without finishing the run")
            if wait_seconds <= 0:
                return status
            if now > deadline:
                raise StepFailed(f"node {head.name}: training did not finish within {wait_seconds:.0f} s (state "
                                 f"{state}, step {run.get('step')}/{run.get('total_steps')}); it keeps running\n"
                                 f"--- log tail ---\n{await head.log_tail()}")
        await asyncio.sleep(POLL_SECONDS)


async def _stop_running(nodes: list[_Node], statuses: list[dict[str, Any]], failure: str) -> None:
    """SIGTERM the trainer on the nodes whose status says it runs (it checkpoints, then exits) and wait for it."""
    for node, status in zip(nodes, statuses, strict=True):
        if status.get("running"):
            code, out = await node.sh(f"{LAUNCHER} stop", timeout=300)
            if code != 0:
                raise StepFailed(f"node {node.name}: {failure}: {out[-800:]}")


async def _converge(props: dict[str, Any]) -> dict[str, Any]:
    nodes = await _open(props["nodes"], float(props.get("connect_timeout_seconds") or 60.0))
    try:
        await _ensure_running(nodes)
        status = await _wait(nodes, float(props.get("wait_seconds") or 0))
        return _report(status, await _summary(nodes[0]))
    finally:
        for node in nodes:
            node.ssh.close()


async def _observe(props: dict[str, Any]) -> dict[str, Any]:
    nodes = await _open(props["nodes"][:1], 15.0)
    try:
        return _report(await nodes[0].status(), await _summary(nodes[0]))
    finally:
        nodes[0].ssh.close()


class TrainingRunProvider(ResourceProvider):
    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = ["triggers"] if olds.get("triggers") != news.get("triggers") or is_unknown(
            news.get("triggers")) else []
        changed = [k for k in ("nodes", "wait_seconds") if olds.get(k) != news.get(k)]
        old_state = (olds.get("training") or {}).get("state")
        unfinished = old_state == "error" or (old_state not in DONE_STATES and bool(news.get("wait_seconds")))
        changed += ["requires"] if olds.get("requires") != news.get("requires") else []
        return DiffResult(changes=bool(replaces or changed or unfinished), replaces=replaces,
                          delete_before_replace=True)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(f"run/{props['run_dir']}", self._outs(props, self._attempt(props)))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._outs(news, self._attempt(news)))

    @staticmethod
    def _attempt(props: dict[str, Any]) -> dict[str, Any]:
        """Failures are recorded (state 'error'), not raised: see lambda_provider/fleet/node_step.py."""
        if any(ok is False for ok in props.get("requires") or []):
            return {"state": "error", "error": None, "skipped": True}
        try:
            return asyncio.run(_converge(props))
        except Exception as exc:  # noqa: BLE001
            message = str(exc) if isinstance(exc, StepFailed) else f"training: {type(exc).__name__}: {exc}"
            return {"state": "error", "error": message}

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        try:
            report = asyncio.run(_observe(props))
        except StepFailed:
            return ReadResult(None, {})  # the head is gone: the run resource goes with it
        return ReadResult(id_, self._outs(props, report))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        return None  # each node's train step stops its trainer (SIGTERM -> checkpoint)

    @staticmethod
    def _outs(props: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
        return {**{k: v for k, v in props.items() if k != "__provider"}, "training": report}


class TrainingRun(Resource, module="fleet", name="TrainingRun"):
    """Type token `pulumi-python:dynamic/fleet:TrainingRun`; output `training` (state, step, latest metrics)."""

    training: pulumi.Output[dict[str, Any]]

    def __init__(self, resource_name: str, *, nodes: pulumi.Input[list[Any]], run_dir: str, wait_seconds: float,
                 triggers: pulumi.Input[list[Any]], requires: list[Any] | None = None,
                 connect_timeout_seconds: float = 60.0, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"nodes": nodes, "run_dir": run_dir, "wait_seconds": wait_seconds, "triggers": triggers,
                 "requires": requires or [], "connect_timeout_seconds": connect_timeout_seconds, "training": None}
        ours = pulumi.ResourceOptions(additional_secret_outputs=["nodes"])
        super().__init__(TrainingRunProvider(), resource_name, props, pulumi.ResourceOptions.merge(opts, ours))
        self.training.apply(_report_error)


def _report_error(training: dict[str, Any] | None) -> None:
    """Fail the update (non-zero exit, for pipelines too) once the failed run is recorded in state."""
    if training and training.get("error"):
        raise pulumi.RunError(training["error"] + "\n(the next `pulumi up` tries again)")

"""The nodes of a training run as the fleet sees them over SSH: the launcher's status, the log of the current launch,
the ranks' heartbeats, and which node's log shows what ended a run (its own error line, not torchrun's traceback)."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import time
from typing import Any

import asyncssh

from lambda_provider.fleet.node_step import StepFailed, parse_result, with_environment, with_secret_environment
from lambda_provider.fleet.remote import (
    AuthenticationRefused,
    Connection,
    HostKeyMismatch,
    NodeUnreachable,
    connect,
    run_on,
)
from lambda_provider.fleet.scripts import LAUNCHER

SETTLE_SECONDS = 30.0
KILLED = re.compile(r"Signal \d+ \((?!SIGTERM)SIG\w+\)")  # SIGTERM is how torchrun stops the bystanders
# What a rank prints when another rank died under it: a symptom, not a cause.
PEER_LOST = re.compile(
    r"Connection (closed|reset) by peer|Broken pipe|DistNetworkError|DistBackendError|"
    r"ProcessGroup(Gloo|NCCL)|NCCL (error|WARN)|gloo/transport",
    re.IGNORECASE,
)
# The trainer's own last word (training/train.py): `config error: ...` or `trainer error: Type: message`.
OWN_ERROR = re.compile(r"^(config error: .*|trainer error: .*)$", re.MULTILINE)
EXCEPTION_LINE = re.compile(r"^(\w+(\.\w+)*(Error|Exception): .*)$", re.MULTILINE)
RUN_DIR = '"${LAMBDA_INSTANCE_ROOT:-}$RUN_PATH"'


class Node:
    def __init__(self, raw: dict[str, Any], ssh: asyncssh.SSHClientConnection, env: dict[str, Any]) -> None:
        self.name: str = raw["node"]
        self.raw = raw
        self.env = env
        self.ssh = ssh

    @property
    def address(self) -> tuple[Any, Any]:
        conn = self.raw.get("connection") or {}
        return conn.get("host"), conn.get("port")

    async def sh(self, script: str, timeout: float = 180.0, secrets: dict[str, str] | None = None) -> tuple[int, str]:
        """Run `script` with the node's environment; `secrets` are exported from stdin (never on a command line)."""
        stdin = None
        if secrets:
            script, stdin = with_secret_environment(script, secrets)
        result = await run_on(self.ssh, with_environment(script, self.env), stdin=stdin, timeout=timeout)
        return result.exit_status, result.output_tail

    async def status(self) -> dict[str, Any]:
        code, out = await self.sh(f"{LAUNCHER} status")
        if code != 0:
            raise StepFailed(f"node {self.name}: cannot read the trainer status: {out[-500:]}")
        return parse_result(out)

    async def launch_log(self, lines: int = 40) -> str:
        """The tail of this node's log since its latest launch (the launcher's `=== ... starts:` line)."""
        log = f"{RUN_DIR}/logs/node-$NODE_RANK.log"
        _, out = await self.sh(
            f'f={log}; [ -f "$f" ] || exit 0; n=$(grep -n \'^=== \' "$f" | tail -n1 | '
            f'cut -d: -f1); tail -n +"${{n:-1}}" "$f" | tail -n {int(lines)}'
        )
        return out

    async def read_json(self, relative: str) -> Any:
        _, out = await self.sh(f"cat {RUN_DIR}/{shlex.quote(relative)} 2>/dev/null || true")
        try:
            return json.loads(out) if out.strip() else None
        except ValueError:
            return None

    async def heartbeats(self) -> list[dict[str, Any]]:
        _, out = await self.sh(f'for f in {RUN_DIR}/ranks/rank-*.json; do [ -f "$f" ] && cat "$f" && echo; done; true')
        beats = []
        for chunk in re.split(r"\n(?=\{)", out.strip()):
            try:
                beats.append(json.loads(chunk))
            except ValueError:
                continue
        return beats

    async def latest_checkpoint_step(self) -> int | None:
        _, out = await self.sh(f"cat {RUN_DIR}/checkpoints/latest 2>/dev/null || true")
        match = re.search(r"step_(\d+)", out)
        return int(match.group(1)) if match else None

    def close(self) -> None:
        self.ssh.close()


def node_environment(raw: dict[str, Any], run_dir: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**(raw.get("environment") or {}), "RUN_PATH": run_dir, **(extra or {})}


async def open_nodes(
    raws: list[dict[str, Any]], run_dir: str, timeout: float, *, extra_env: dict[str, Any] | None = None
) -> list[Node]:
    """Every node, or StepFailed naming the first that cannot be reached (the others are closed again)."""
    results = await asyncio.gather(*(_open(raw, run_dir, timeout, extra_env) for raw in raws), return_exceptions=True)
    failure = next((r for r in results if isinstance(r, BaseException)), None)
    if failure is not None:
        for r in results:
            if isinstance(r, Node):
                r.close()
        raise failure
    return [r for r in results if isinstance(r, Node)]


async def open_reachable(raws: list[dict[str, Any]], run_dir: str, timeout: float) -> list[Node | str]:
    """Each node opened, or the reason it could not be (for views that must not fail on a dead node)."""
    results = await asyncio.gather(*(_open(raw, run_dir, timeout, None) for raw in raws), return_exceptions=True)
    return [r if isinstance(r, Node) else str(r) for r in results]


async def _open(raw: dict[str, Any], run_dir: str, timeout: float, extra_env: dict[str, Any] | None) -> Node:
    conn = raw.get("connection") or {}
    if not conn.get("host"):
        raise StepFailed(
            f"node {raw['node']}: training: the instance has no address (status {conn.get('status') or 'unknown'})"
        )
    try:
        ssh = await connect(Connection.from_props(conn), timeout)
    except (NodeUnreachable, HostKeyMismatch, AuthenticationRefused) as exc:
        what = "node not reachable: " if isinstance(exc, NodeUnreachable) else ""
        raise StepFailed(f"node {raw['node']}: training: {what}{exc}") from None
    return Node(raw, ssh, node_environment(raw, run_dir, extra_env))


def own_error(tail: str) -> str | None:
    """The trainer's own error line in a log tail: `config error:`/`trainer error:`, else the last exception line
    that is not torchrun's or a lost peer's."""
    own = [line.strip() for line in OWN_ERROR.findall(tail) if not PEER_LOST.search(line)]
    if own:
        return own[0]
    for line in reversed(EXCEPTION_LINE.findall(tail)):
        text = line[0]
        if not PEER_LOST.search(text) and "ChildFailedError" not in text:
            return text.strip()
    return None


def first_cause(tails: list[str]) -> int:
    """Which node's log shows what ended the run: the trainer's own error, a worker killed by a signal, else an error
    of its own (not a lost peer), else the head. Every rank of a torchrun world fails when one dies, so the first
    failure seen is often a bystander's."""
    for i, tail in enumerate(tails):
        if any(not PEER_LOST.search(line) for line in OWN_ERROR.findall(tail)):
            return i
    for i, tail in enumerate(tails):
        if KILLED.search(tail):
            return i
    for i, tail in enumerate(tails):
        if re.search(r"Traceback|Error", tail) and not PEER_LOST.search(tail):
            return i
    for i, tail in enumerate(tails):
        if not PEER_LOST.search(tail):
            return i  # died without a word (SIGKILL of the whole node's trainer, the OOM killer) under a lost peer
    return 0


async def settled_log(node: Node) -> str:
    """The node's launch log once its trainer has exited (bounded): when a worker dies, the other ranks fail at once,
    and torchrun writes which worker died and how (e.g. `Signal 9 (SIGKILL)`) only as it exits."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while (await node.status()).get("running") and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    return await node.launch_log()


def cause_of(tail: str) -> str:
    killed = KILLED.search(tail)
    own = own_error(tail)
    if own and own.startswith(("config error:", "trainer error:")):
        return own
    if killed:
        return f"a trainer worker was killed ({killed.group(0)})"
    if own:
        return own
    if PEER_LOST.search(tail):
        return "its trainer stopped: it lost a peer"
    return "its trainer exited without an error of its own (killed from outside: SIGKILL, the OOM killer)"


async def run_failed(nodes: list[Node], seen_on: Node, seen: str) -> StepFailed:
    """The failure of a run, blamed on the node whose log shows the cause, with a hint that is true."""
    tails = list(await asyncio.gather(*(settled_log(n) for n in nodes)))
    index = first_cause(tails)
    culprit, tail = nodes[index], tails[index]
    cause = cause_of(tail)
    if cause.startswith("its trainer exited") and culprit is seen_on:
        cause = seen
    also = "" if culprit is seen_on else f"; seen first on node {seen_on.name}: {seen}"
    if cause.startswith("config error:"):
        hint = (
            "the trainer refuses its config: fix the key it names (training.config / training.overrides) and "
            "run `pulumi up`"
        )
    else:
        step = await nodes[0].latest_checkpoint_step()
        hint = (
            f"the run stopped on every node; the next `pulumi up` restarts it from its latest checkpoint (step {step})"
            if step is not None
            else "the run stopped on every node; it has no checkpoint yet, so the next `pulumi up` starts it again"
        )
    return StepFailed(f"node {culprit.name}: {cause}{also}; {hint}\n--- log tail (node {culprit.name}) ---\n{tail}")

"""`FleetNodes`: every node of a fleet brought to "set up" at once -- boot, ready gate, setup -- from one provider call.

Why one resource for all nodes: the dynamic-provider host serves at most four calls at once, and a call that waits
(a boot, an SSH session) holds one of them, so per-node resources that wait bring an N-node fleet up in waves of
four. Here one asyncio loop waits for all of them: the boot through one `GET /instances` per poll interval for the
whole fleet (the client's shared rate limiter paces it), then per node, concurrently, the ready gate (what the
instance type promises is there, the filesystem is writable; the host key it sees is pinned for every later
connection) and the setup (the training directory uploaded, training/setup_node.sh run).

Per node, as before: failures are recorded, not raised (`ok: false`, `error` naming the node, the step and the
cause, in `status[<node>]`); the program fails the update with every node's error once the outputs are in state,
and the next `up` redoes only the nodes that need it: a new instance (a replaced node: new host key), a failed or
unfinished step, or a change of what the setup applies. The preview shows a node's change under its name
(`nodes.<node>`). `read` (refresh) marks the nodes whose instance is gone.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    UpdateResult,
)

from lambda_provider import progress
from lambda_provider.client.models import TERMINAL_STATUSES
from lambda_provider.client.models import Instance as InstanceRecord
from lambda_provider.fleet import scripts
from lambda_provider.fleet.node_step import (
    failure_cause,
    parse_result,
    upload_command,
    visible_tail,
    with_environment,
)
from lambda_provider.fleet.remote import (
    AuthenticationRefused,
    Connection,
    HostKeyMismatch,
    NodeUnreachable,
    connect,
    run_on,
    server_host_key,
    tar_directory,
)
from lambda_provider.resources import liveness
from lambda_provider.resources.instance import default_boot_timeout
from lambda_provider.resources.provider import LambdaProvider
from lambda_provider.resources.settings import ProviderSettings
from lambda_provider.resources.values import is_unknown

READY_SCRIPT_TIMEOUT = 120.0
SETUP_CONNECT_TIMEOUT = 60.0
MISSING_POLLS = 3  # a launched instance absent from this many listings in a row is gone
RERUN_NOTE = "(the next `pulumi up` runs this node's steps again)"


class NodeFailed(RuntimeError):
    pass


def setup_fingerprint(props: dict[str, Any], spec: dict[str, Any]) -> str:
    """What a node's setup applies: a change reruns it on that node (same instance, pinned host key)."""
    applied = {"setup": props.get("setup"), "environment": spec.get("setup_environment")}
    return hashlib.sha256(json.dumps(applied, sort_keys=True, default=str).encode()).hexdigest()[:16]


def ready_fingerprint(props: dict[str, Any], spec: dict[str, Any]) -> str:
    applied = {"fs_mount": props.get("fs_mount"), "expect": spec.get("expect")}
    return hashlib.sha256(json.dumps(applied, sort_keys=True, default=str).encode()).hexdigest()[:16]


def node_plan(props: dict[str, Any], name: str, old: dict[str, Any] | None) -> str:
    """What this update does on a node: 'none', 'setup' (same instance, its setup changed or failed) or 'all'."""
    spec = props["nodes"][name]
    if not old or old.get("instance_id") != spec.get("instance_id") or not old.get("host_key"):
        return "all"
    if old.get("ready_applied") != ready_fingerprint(props, spec):
        return "all"
    if not old.get("ok") or old.get("setup_applied") != setup_fingerprint(props, spec):
        return "setup"
    return "none"


class BootWatch:
    """One listing per poll interval for every node still booting (instead of one poller per node)."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.interval = max(0.05, settings.poll_interval)
        self.latest: dict[str, InstanceRecord] = {}
        self.missing: dict[str, int] = {}
        self.waiting: set[str] = set()
        self.error: str | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        client = self.settings.client()
        try:
            while self.waiting:
                try:
                    listed = await asyncio.to_thread(client.instances.list)
                    self.error = None
                except Exception as exc:  # noqa: BLE001 - a failed listing is retried; the waiters' timeouts bound it
                    self.error = f"{type(exc).__name__}: {exc}"
                    listed = None
                if listed is not None:
                    by_id = {i.id: i for i in listed}
                    for instance_id in list(self.waiting):
                        if instance_id in by_id:
                            self.latest[instance_id] = by_id[instance_id]
                            self.missing.pop(instance_id, None)
                        else:
                            self.missing[instance_id] = self.missing.get(instance_id, 0) + 1
                self._changed.set()
                self._changed = asyncio.Event()
                await asyncio.sleep(self.interval)
        finally:
            client.close()

    async def until_settled(self, name: str, instance_id: str, timeout: float) -> InstanceRecord:
        """The instance once ready (active with an ip); NodeFailed when it died, is unhealthy or the timeout passed."""
        self.waiting.add(instance_id)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll())
        deadline = time.monotonic() + timeout
        try:
            while True:
                inst = self.latest.get(instance_id)
                if inst is not None and inst.is_ready:
                    return inst
                if inst is not None and inst.status in TERMINAL_STATUSES | {"terminating"}:
                    raise NodeFailed(
                        f"node {name}: instance {instance_id} was {inst.status} while booting; the next "
                        "`pulumi up` replaces it (a new launch, same placements)"
                    )
                if inst is not None and inst.status == liveness.UNHEALTHY:
                    raise NodeFailed(
                        f"node {name}: {liveness.unhealthy_warning({'owner': {'resource': name}}, instance_id)}"
                    )
                if self.missing.get(instance_id, 0) >= MISSING_POLLS:
                    raise NodeFailed(f"node {name}: instance {instance_id} is not listed by the API (gone)")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    status = inst.status if inst else "unknown"
                    ip = inst.ip if inst and inst.ip else "none yet"
                    api = f"; the last listing failed: {self.error}" if self.error else ""
                    raise NodeFailed(
                        f"node {name}: instance {instance_id} is not ready after {timeout:.0f} s of waiting "
                        f"(status {status}, ip {ip}){api}; the next `pulumi up` waits for it again"
                    )
                changed = self._changed
                try:
                    await asyncio.wait_for(changed.wait(), timeout=remaining)
                except TimeoutError:
                    continue
        finally:
            self.waiting.discard(instance_id)


async def _session(
    conn: Connection, command: str, stdin: bytes | None, timeout: float, connect_timeout: float
) -> tuple[int, str, str | None]:
    ssh = await connect(conn, connect_timeout)
    async with ssh:
        result = await run_on(ssh, command, stdin=stdin, timeout=timeout)
        return result.exit_status, result.output_tail, server_host_key(ssh)


async def _step(
    name: str, step: str, conn: Connection, command: str, stdin: bytes | None, timeout: float, connect_timeout: float
) -> tuple[dict[str, Any], str | None]:
    try:
        code, tail, host_key = await _session(conn, command, stdin, timeout, connect_timeout)
    except NodeUnreachable as exc:
        raise NodeFailed(f"node {name}: {step}: node not reachable: {exc}") from None
    except (HostKeyMismatch, AuthenticationRefused) as exc:
        raise NodeFailed(f"node {name}: {step}: {exc}") from None
    if code != 0:
        raise NodeFailed(
            f"node {name}: {step} failed (exit {code}): {failure_cause(tail)}\n--- output tail ---\n"
            f"{visible_tail(tail, 2000)}"
        )
    return {"result": parse_result(tail), "output_tail": visible_tail(tail)}, host_key


class Converge:
    """One update: each node's steps, concurrently, with one boot watch and one tarball for all of them."""

    def __init__(self, props: dict[str, Any], olds: dict[str, Any] | None, settings: ProviderSettings) -> None:
        self.props = props
        self.old_status: dict[str, Any] = (olds or {}).get("status") or {}
        self.watch = BootWatch(settings)
        upload = (props.get("setup") or {}).get("upload") or None
        self.tarball = tar_directory(Path(upload["local_dir"])) if upload else None

    def connection(self, inst: dict[str, Any], host_key: str | None) -> Connection:
        ssh = self.props.get("ssh") or {}
        return Connection(
            inst["ip"],
            int(inst.get("ssh_port") or 22),
            str(ssh.get("user") or "ubuntu"),
            ssh.get("private_key"),
            ssh.get("private_key_path"),
            host_key,
        )

    async def node(self, name: str) -> dict[str, Any]:
        spec = self.props["nodes"][name]
        old = self.old_status.get(name)
        plan = node_plan(self.props, name, old)
        if plan == "none":
            return old  # type: ignore[return-value]
        record: dict[str, Any] = {
            "node": name,
            "instance_id": spec["instance_id"],
            "ok": False,
            "error": None,
            "ready_applied": None,
            "setup_applied": None,
            "host_key": old.get("host_key") if plan == "setup" else None,
        }
        if plan == "setup":
            record["ready_applied"] = old.get("ready_applied") if old else None
            record["ready_result"] = (old or {}).get("ready_result")
        try:
            progress.emit("node", node=name, phase="booting")
            timeout = float(spec.get("boot_timeout_seconds") or 0) or default_boot_timeout(int(spec.get("gpus") or 1))
            inst = await self.watch.until_settled(name, spec["instance_id"], timeout)
            record.update(ip=inst.ip, private_ip=inst.private_ip, ssh_port=inst.ssh_port, instance_status=inst.status)
            if plan == "all":
                await self._ready_gate(name, spec, inst, record)
            await self._setup(name, spec, inst, record)
            record.update(ok=True)
        except NodeFailed as exc:
            record["error"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - recorded as the node's error (see the module docstring)
            record["error"] = f"node {name}: {type(exc).__name__}: {exc}"
        if record["error"]:
            progress.emit("node", node=name, phase="failed")
        return record

    async def _ready_gate(self, name: str, spec: dict[str, Any], inst: InstanceRecord, record: dict[str, Any]) -> None:
        env = {**(spec.get("expect") or {}), "FS_MOUNT": self.props.get("fs_mount")}
        outcome, host_key = await _step(
            name,
            "ready gate",
            self.connection(record, None),  # trust on first use: this instance's key is pinned from here on
            with_environment(scripts.READY, env),
            None,
            READY_SCRIPT_TIMEOUT,
            float(self.props.get("ready_timeout_seconds") or 60.0),
        )
        record.update(
            host_key=host_key, ready_result=outcome["result"], ready_applied=ready_fingerprint(self.props, spec)
        )
        progress.emit("node", node=name, phase="ready", ip=inst.ip)

    async def _setup(self, name: str, spec: dict[str, Any], inst: InstanceRecord, record: dict[str, Any]) -> None:
        setup = self.props.get("setup") or {}
        if not setup.get("script"):
            record["setup_applied"] = setup_fingerprint(self.props, spec)
            return
        progress.emit("node", node=name, phase="setup")
        command = with_environment(setup["script"], spec.get("setup_environment"))
        upload = setup.get("upload") or None
        if upload:
            command = upload_command(upload["remote_dir"]) + " && {\n" + command + "\n}"
        outcome, _ = await _step(
            name,
            "setup",
            self.connection(record, record.get("host_key")),
            command,
            self.tarball,
            float(setup.get("timeout_seconds") or 1800.0),
            SETUP_CONNECT_TIMEOUT,
        )
        record.update(
            setup_result=outcome["result"],
            output_tail=outcome["output_tail"],
            setup_applied=setup_fingerprint(self.props, spec),
        )
        progress.emit("node", node=name, phase="set up")

    async def run(self) -> dict[str, Any]:
        names = list(self.props.get("nodes") or {})
        records = await asyncio.gather(*(self.node(n) for n in names))
        return dict(zip(names, records, strict=True))


def outcome(props: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    errors = [r["error"] for r in status.values() if r.get("error")]
    outs = {k: v for k, v in props.items() if k != "__provider"}
    outs.update(status=status, ok=not errors and len(status) == len(props.get("nodes") or {}), errors=errors)
    return outs


class FleetNodesProvider(LambdaProvider):
    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("ssh", "fs_mount", "setup", "ready_timeout_seconds")
        nodes = news.get("nodes")
        changed = is_unknown(nodes) or any(olds.get(k) != news.get(k) for k in keys)
        if not changed and isinstance(nodes, dict):
            status = olds.get("status") or {}
            changed = set(nodes) != set(olds.get("nodes") or {}) or any(
                is_unknown(spec) or node_plan(news, name, status.get(name)) != "none" for name, spec in nodes.items()
            )
        return DiffResult(changes=bool(changed or olds.get("ok") is False), replaces=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult("fleet-nodes", outcome(props, asyncio.run(Converge(props, None, self.settings).run())))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outcome(news, asyncio.run(Converge(news, olds, self.settings).run())))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh: a node whose instance is gone (or going) is marked unfinished; the next `up` redoes it."""
        with self.client() as client:
            alive = {i.id for i in client.instances.list() if i.status not in TERMINAL_STATUSES | {"terminating"}}
        status = dict(props.get("status") or {})
        for name, record in status.items():
            if record.get("instance_id") not in alive and record.get("ok"):
                gone = f"node {name}: instance {record.get('instance_id')} is gone at Lambda"
                status[name] = {**record, "ok": False, "error": gone}
        return ReadResult(id_, outcome(props, status))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        return None  # nothing of its own on the nodes: each Instance terminates its machine


class FleetNodes(Resource, module="fleet", name="FleetNodes"):
    """Type token `pulumi-python:dynamic/fleet:FleetNodes`. Outputs `status` ({node: ip, private_ip, ssh_port,
    instance_status, host_key, ok, error, ready/setup results}), `ok` and `errors` (each naming its node)."""

    status: pulumi.Output[dict[str, Any]]
    ok: pulumi.Output[bool]
    errors: pulumi.Output[list[str]]

    def __init__(
        self,
        resource_name: str,
        *,
        nodes: dict[str, pulumi.Input[dict[str, Any]]],
        ssh: pulumi.Input[dict[str, Any]],
        fs_mount: str,
        setup: dict[str, Any],
        ready_timeout_seconds: float,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "nodes": nodes,
            "ssh": ssh,
            "fs_mount": fs_mount,
            "setup": setup,
            "ready_timeout_seconds": ready_timeout_seconds,
            "status": None,
            "ok": None,
            "errors": None,
        }
        ours = pulumi.ResourceOptions(additional_secret_outputs=["ssh"])
        super().__init__(FleetNodesProvider(), resource_name, props, pulumi.ResourceOptions.merge(opts, ours))
        self.errors.apply(_report)


def _report(errors: list[str] | None) -> None:
    """Fail the update (non-zero exit) once every node's outcome is recorded in state, naming each failed node."""
    if errors:
        raise pulumi.RunError("\n".join(errors) + f"\n{RERUN_NOTE}")

"""`TrainingRun`: the fleet-level run, converged like the machines are.

`check` (preview and up) reads the run from the nodes (bounded; a preview that cannot reach them says so) and decides
with the change table (training/changes.py) what this update does to the run: nothing, start, resume from the latest
checkpoint with new values or on a new world, a fresh run in a new run directory, or a refusal with the fix. The
decision is an input (`action`, `change`: one human line), so `pulumi preview --diff` shows it next to the diff.
`create`/`update` then do exactly that: stop the trainer everywhere it runs (SIGTERM: it checkpoints), start every
node's share, and return only once every rank has taken its first step (or fail with the trainer's own error line);
then the optional bounded wait. `read` (refresh) re-reads the run from every node: state, step, metrics, and which
node's trainer died and why. Failures name the node and the cause, with that node's log since the launch.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from dataclasses import dataclass, fields
from typing import Any

import pulumi
import yaml
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from lambda_provider import progress
from lambda_provider.fleet.node_step import StepFailed
from lambda_provider.fleet.run_nodes import RUN_DIR, Node, cause_of, first_cause, open_nodes, open_reachable, run_failed
from lambda_provider.fleet.scripts import LAUNCHER
from lambda_provider.resources.values import is_unknown
from training.changes import UNKNOWN, RunView, decide, is_done
from training.config import TrainConfig

# What the fleet writes into the run directory at each launch (`_record_run`); `lambda-sae pull` reads its task.
RUN_RECORD = "fleet-run.json"
POLL_SECONDS = 2.0
EXIT_GRACE_SECONDS = 30.0
VIEW_CONNECT_SECONDS = 8.0
METRIC_KEYS = ("step", "fvu", "l0", "dead_fraction", "loss", "vectors_per_second")
SUMMARY_KEYS = (
    "fvu",
    "l0",
    "dead_fraction",
    "steps",
    "vectors_per_second",
    "wall_seconds",
    "recovery",
    "world_size",
    "ce_loss_recovered",
    "delta_lm_loss",
)


# ------------------------------------------------------------------ reading the run
async def _statuses(nodes: list[Node]) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(n.status() for n in nodes)))


@dataclass(frozen=True)
class RunReading:
    view: RunView
    dead: dict[str, str]  # per dead node why: unreachable, or its trainer's cause
    report: dict[str, Any] | None = None  # the head's status and summary as outputs (when asked and reachable)


async def _view(raws: list[dict[str, Any]], run_dir: str, timeout: float, report: bool = False) -> RunReading:
    """The run in `run_dir` as the nodes show it; with `report`, also the head's outputs (one SSH session each)."""
    opened = await open_reachable(raws, run_dir, timeout)
    try:
        reachable = [n for n in opened if isinstance(n, Node)]
        if not reachable or not isinstance(opened[0], Node):
            return RunReading(
                RunView(UNKNOWN, dead=tuple(r["node"] for r in raws)),
                {
                    raw["node"]: f"not reachable: {reason}"
                    for raw, reason in zip(raws, opened, strict=True)
                    if isinstance(reason, str)
                },
            )
        statuses = await _statuses(reachable)
        head = statuses[0].get("status") or {}
        state = head.get("state") or statuses[0].get("state") or "none"
        reason = head.get("reason")
        dead: dict[str, str] = {}
        for raw, node in zip(raws, opened, strict=True):
            if isinstance(node, str):
                dead[raw["node"]] = f"not reachable: {node}"
        if not is_done(state, reason):
            stopped = [n for n, s in zip(reachable, statuses, strict=True) if not s.get("running")]
            tails = [await n.launch_log() for n in stopped]
            if stopped:
                culprit = first_cause(tails)  # named first: the node whose log shows what ended the run
                for i in [culprit, *(i for i in range(len(stopped)) if i != culprit)]:
                    dead[stopped[i].name] = cause_of(tails[i]) if state != "none" else "not started"
        outputs = _report(statuses[0], await _summary(opened[0])) if report else None
        return RunReading(RunView(state, head.get("step"), head.get("total_steps"), tuple(dead), reason), dead, outputs)
    finally:
        for node in opened:
            if isinstance(node, Node):
                node.close()


def _report(status: dict[str, Any], summary: dict[str, Any] | None) -> dict[str, Any]:
    run = status.get("status") or {}
    metrics = run.get("metrics") or {}
    state = run.get("state") or status.get("state") or "none"
    report = {
        "state": state,
        "reason": run.get("reason"),
        "step": run.get("step"),
        "total_steps": run.get("total_steps"),
        "latest_metrics": {k: metrics.get(k) for k in METRIC_KEYS if k in metrics},
    }
    if summary and is_done(state, run.get("reason")):  # a summary.json from before a resume is not this run's
        report["summary"] = {k: summary.get(k) for k in SUMMARY_KEYS if k in summary}
    if run.get("manifests"):  # a training.cache run's status.json (training/cache_activations.py)
        report["cache"] = {"vectors": run.get("vectors"), "manifests": run.get("manifests")}
    if status.get("lingered"):
        report["note"] = (
            f"the run finished but its processes had not exited {EXIT_GRACE_SECONDS:.0f} s later; "
            "the fleet stopped them"
        )
    return report


async def _summary(head: Node) -> dict[str, Any] | None:
    summary = await head.read_json("summary.json")
    return summary if isinstance(summary, dict) else None


# ------------------------------------------------------------------ changing the run
async def _stop(nodes: list[Node]) -> None:
    """SIGTERM every trainer that runs on these nodes (it checkpoints, then exits) and wait for it."""
    statuses = await _statuses(nodes)

    async def stop(node: Node) -> None:
        code, out = await node.sh(f"{LAUNCHER} stop", timeout=300)
        if code != 0 and "killed it" not in out:  # a trainer hung on a dead peer is killed: resume from a checkpoint
            raise StepFailed(f"node {node.name}: could not stop the trainer for a restart: {out[-800:]}")

    await asyncio.gather(*(stop(n) for n, s in zip(nodes, statuses, strict=True) if s.get("running")))


async def _start(nodes: list[Node], secrets: dict[str, str] | None = None) -> None:
    async def start(node: Node) -> None:
        code, out = await node.sh(f"{LAUNCHER} start", timeout=300, secrets=secrets)
        if code != 0:
            raise StepFailed(f"node {node.name}: training launch failed: {out[-1500:]}")

    await asyncio.gather(*(start(n) for n in nodes))


async def _launch_health(nodes: list[Node], launch_id: str, world: int, timeout: float) -> None:
    """Return once every rank of this launch has taken its first step (its heartbeat file); fail with the trainer's
    own error line when a trainer exits before that, or when the window passes."""
    head = nodes[0]
    deadline = time.monotonic() + timeout
    while True:
        beats = {b.get("rank") for b in await head.heartbeats() if b.get("launch_id") == launch_id}
        if len(beats) >= world:
            return
        statuses = await _statuses(nodes)
        for node, status in zip(nodes, statuses, strict=True):
            if not status.get("running"):
                run = status.get("status") or {}
                if is_done(run.get("state"), run.get("reason")) and node is head:
                    return  # nothing left to train (e.g. a resumed run already at its end)
                raise await run_failed(nodes, node, "the trainer exited before its first step")
        if time.monotonic() > deadline:
            missing = sorted(set(range(world)) - beats)
            raise StepFailed(
                f"node {head.name}: training: rank(s) {missing} took no step within {timeout:.0f} s of "
                "the launch (the trainers keep running); raise training.launchTimeoutSeconds if the "
                f"start-up is slow (a model download)\n--- log tail ---\n{await head.launch_log()}"
            )
        await asyncio.sleep(POLL_SECONDS / 2)


async def _wait(nodes: list[Node], wait_seconds: float) -> dict[str, Any]:
    head = nodes[0]
    deadline = time.monotonic() + wait_seconds
    done_since: float | None = None
    while True:
        status = await head.status()
        run = status.get("status") or {}
        state = run.get("state")
        now = time.monotonic()
        progress.emit(
            "training",
            node=head.name,
            state=state,
            step=run.get("step"),
            total_steps=run.get("total_steps"),
            task=run.get("task"),
            **{k: (run.get("metrics") or {}).get(k) for k in ("fvu", "vectors_per_second")},
        )
        if state == "failed":
            raise await run_failed(nodes, head, f"training failed: {run.get('error') or run.get('reason')}")
        if state == "stopped" and not is_done(state, run.get("reason")):
            raise StepFailed(
                f"node {head.name}: the trainer was stopped from outside (reason {run.get('reason')}: a "
                f"SIGTERM, e.g. a preemption or a shutdown) at step {run.get('step')}; the next "
                "`pulumi up` resumes it from that checkpoint"
            )
        if state in ("finished", "stopped"):
            # The head writes the SAE, the summary and then this state before its processes tear down (DDP's
            # barrier, torchrun's exit barrier across nodes): the run is done; its exit is waited for only briefly,
            # then what is left of it is stopped, so that nothing lingers on the nodes.
            done_since = done_since if done_since is not None else now
            if not status.get("running") or wait_seconds <= 0:
                return status
            if now - done_since > EXIT_GRACE_SECONDS or now > deadline:
                await _stop(nodes)
                return {**status, "running": False, "lingered": True}
        else:
            for node in nodes:
                node_status = status if node is head else await node.status()
                head_run = (await head.status()).get("status") or {}
                if not node_status.get("running") and not is_done(head_run.get("state"), head_run.get("reason")):
                    raise await run_failed(nodes, node, "the trainer exited without finishing the run")
            if wait_seconds <= 0:
                return status
            if now > deadline:
                raise StepFailed(
                    f"node {head.name}: training did not finish within {wait_seconds:.0f} s (state "
                    f"{state}, step {run.get('step')}/{run.get('total_steps')}); it keeps running\n"
                    f"--- log tail ---\n{await head.launch_log(25)}"
                )
        await asyncio.sleep(POLL_SECONDS)


def trainer_yaml(config: dict[str, Any]) -> str:
    """The trainer's YAML. Through the engine every integer arrives as a float: integer keys get theirs back."""
    types = {f.name: str(f.type) for f in fields(TrainConfig)}
    restored = {
        k: int(v)
        if isinstance(v, float) and v.is_integer() and "int" in types.get(k, "") and "float" not in types.get(k, "")
        else v
        for k, v in config.items()
    }
    return yaml.safe_dump(restored, sort_keys=True)


def _launch_env(props: dict[str, Any], launch_id: str) -> dict[str, Any]:
    encoded = base64.b64encode(trainer_yaml(props.get("trainer_config") or {}).encode()).decode()
    task = props.get("task") or {}
    return {
        "TRAIN_CONFIG_B64": encoded,
        "FLEET_LAUNCH_ID": launch_id,
        "TRAIN_MODULE": task.get("module") or "training.train",
        "TRAIN_ARGS": " ".join(str(a) for a in task.get("args") or []),
    }


async def _converge(olds: dict[str, Any] | None, news: dict[str, Any]) -> dict[str, Any]:
    run_dir, action = news["run_dir"], news.get("action") or "start"
    timeout = float(news.get("connect_timeout_seconds") or 60.0)
    launch_id = uuid.uuid4().hex[:12]
    nodes = await open_nodes(news["nodes"], run_dir, timeout, extra_env=_launch_env(news, launch_id))
    try:
        if action != "none":
            # Stop the trainer wherever one runs: the new world's nodes and the old world's that are still up (a
            # node being removed or replaced is deleted only after this update).
            ours = {n.address for n in nodes}
            leaving = [
                r
                for r in (olds or {}).get("nodes") or []
                if ((r.get("connection") or {}).get("host"), (r.get("connection") or {}).get("port")) not in ours
            ]
            old_nodes = [
                n
                for n in await open_reachable(leaving, (olds or {}).get("run_dir") or run_dir, 10.0)
                if isinstance(n, Node)
            ]
            try:
                await _stop(old_nodes + nodes)
            finally:
                for node in old_nodes:
                    node.close()
            head_status = await nodes[0].status()
            head_run = head_status.get("status") or {}
            finished = (
                is_done(head_run.get("state"), head_run.get("reason"))
                and action == "start"
                and await nodes[0].read_json(RUN_RECORD) == _run_record(news)
            )
            if not finished:
                await _record_run(nodes[0], news)
                await _start(nodes, news.get("secret_environment") or None)
                await _launch_health(
                    nodes,
                    launch_id,
                    int(news.get("world_size") or len(nodes)),
                    float(news.get("launch_timeout_seconds") or 900.0),
                )
        status = await _wait(nodes, float(news.get("wait_seconds") or 0))
        return _report(status, await _summary(nodes[0]))
    finally:
        for node in nodes:
            node.close()


def _run_record(props: dict[str, Any]) -> dict[str, Any]:
    record = {"trainer_config": props.get("trainer_config"), "world_size": props.get("world_size")}
    return {**record, "task": props["task"]} if props.get("task") else record


async def _record_run(head: Node, props: dict[str, Any]) -> None:
    """What the run directory was last launched with: a `start` on a directory whose run finished with exactly this
    does not train it again (and never rewrites its summary)."""
    text = base64.b64encode(json.dumps(_run_record(props)).encode()).decode()
    # A first start comes before the launcher makes the run directory: make it here, or the record is never written.
    code, out = await head.sh(f"mkdir -p {RUN_DIR} && echo {text} | base64 -d > {RUN_DIR}/{RUN_RECORD}")
    if code != 0:
        raise StepFailed(f"node {head.name}: cannot write {RUN_RECORD} in the run directory: {out[-500:]}")


async def _observe(props: dict[str, Any]) -> dict[str, Any]:
    """For refresh: the run from every node; a dead trainer or node is named with its cause."""
    reading = await _view(props["nodes"], props["run_dir"], 15.0, report=True)
    view, dead = reading.view, reading.dead
    report = reading.report or {"state": view.state, "step": view.step, "total_steps": view.total_steps}
    if dead and not is_done(report.get("state"), report.get("reason")):
        report["state"] = "crashed"
    report["crashed"] = [{"node": node, "cause": cause} for node, cause in dead.items()]
    return report


class TrainingRunProvider(ResourceProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        if any(is_unknown(news.get(k)) for k in ("trainer_config", "world_size", "run_base")):
            return CheckResult(news, [])
        view = RunView()
        if olds and olds.get("nodes") and olds.get("run_dir") and not is_unknown(olds.get("nodes")):
            try:
                view = asyncio.run(_view(olds["nodes"], olds["run_dir"], VIEW_CONNECT_SECONDS)).view
            except Exception:  # noqa: BLE001 - a preview that cannot read the nodes decides from the config alone
                view = RunView()
        old_inputs = olds if olds and olds.get("run_dir") else None
        decision = decide(old_inputs, news, view)
        checked = {
            **news,
            "action": decision.action,
            "change": decision.line,
            "generation": decision.generation,
            "run_dir": decision.run_dir,
        }
        if decision.action == "refuse":
            return CheckResult(checked, [CheckFailure("trainer_config", f"training: {decision.refusal}")])
        return CheckResult(checked, [])

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old_state = (olds.get("training") or {}).get("state")
        changed = [k for k in ("wait_seconds", "requires", "launch_timeout_seconds") if olds.get(k) != news.get(k)]
        acts = news.get("action") not in (None, "none") or bool(news.get("change"))
        return DiffResult(
            changes=bool(acts or changed or old_state == "error" or is_unknown(news.get("nodes"))),
            replaces=[],
            delete_before_replace=True,
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(f"run/{props['run_base']}", self._outs(props, self._attempt(None, props)))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._outs(news, self._attempt(olds, news)))

    @staticmethod
    def _attempt(olds: dict[str, Any] | None, props: dict[str, Any]) -> dict[str, Any]:
        """Failures are recorded (state 'error'), not raised: see lambda_provider/fleet/node_step.py."""
        base = {"change": props.get("change"), "run_dir": props.get("run_dir")}
        if any(ok is False for ok in props.get("requires") or []):
            return {**base, "state": "error", "error": None, "skipped": True}
        try:
            return {**base, **asyncio.run(_converge(olds, props))}
        except Exception as exc:  # noqa: BLE001
            message = str(exc) if isinstance(exc, StepFailed) else f"training: {type(exc).__name__}: {exc}"
            return {**base, "state": "error", "error": message}

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        try:
            report = asyncio.run(_observe(props))
        except Exception as exc:  # noqa: BLE001 - the run stays tracked; its state says it could not be read
            report = {"state": UNKNOWN, "error": None, "crashed": [], "note": f"could not read the run: {exc}"}
        previous = props.get("training") or {}
        report = {"change": previous.get("change"), "run_dir": props.get("run_dir"), **report}
        return ReadResult(id_, self._outs(props, report))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        async def stop_all() -> None:
            nodes = [
                n
                for n in await open_reachable(props.get("nodes") or [], props.get("run_dir") or "", 15.0)
                if isinstance(n, Node)
            ]
            try:
                await _stop(nodes)
            finally:
                for node in nodes:
                    node.close()

        try:
            asyncio.run(stop_all())
        except Exception as exc:  # noqa: BLE001 - the nodes are being torn down; a raise would keep this forever
            pulumi.log.warn(f"training: could not stop every trainer: {exc}")

    @staticmethod
    def _outs(props: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
        # The secret environment stays an input (stored encrypted) and is never an output.
        kept = {k: v for k, v in props.items() if k not in ("__provider", "secret_environment")}
        return {**kept, "training": report}


class TrainingRun(Resource, module="fleet", name="TrainingRun"):
    """Type token `pulumi-python:dynamic/fleet:TrainingRun`; outputs `training` (state, step, latest metrics, change,
    crashed nodes) and `run_dir` (the run's directory on the filesystem: a fresh run gets `<runName>-2`, ...)."""

    training: pulumi.Output[dict[str, Any]]
    run_dir: pulumi.Output[str]
    change: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        nodes: pulumi.Input[list[Any]],
        node_ids: pulumi.Input[list[Any]],
        run_base: str,
        trainer_config: dict[str, Any],
        world_size: int,
        data_digest: str | None = None,
        code_digest: str,
        master_port: int,
        wait_seconds: float,
        requires: list[Any] | None = None,
        connect_timeout_seconds: float = 60.0,
        launch_timeout_seconds: float = 900.0,
        secret_environment: pulumi.Input[dict[str, str]] | None = None,
        task: dict[str, Any] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        # `secret_environment` (HF_TOKEN): exported to the trainers at launch through the SSH session's stdin; a
        # Pulumi secret, so state holds it encrypted, and never an output.
        props = {
            "nodes": nodes,
            "node_ids": node_ids,
            "run_base": run_base,
            "trainer_config": trainer_config,
            # The uploaded files (`data`) the trainer config names: re-uploaded content is a fresh run.
            "data_digest": data_digest,
            "world_size": world_size,
            "code_digest": code_digest,
            "master_port": master_port,
            "wait_seconds": wait_seconds,
            "requires": requires or [],
            "connect_timeout_seconds": connect_timeout_seconds,
            "launch_timeout_seconds": launch_timeout_seconds,
            **({"secret_environment": pulumi.Output.secret(secret_environment)} if secret_environment else {}),
            # What runs instead of the trainer (`training.cache`: {"module": "training.cache_activations", "args"}).
            **({"task": task} if task else {}),
            "action": None,
            "change": None,
            "generation": None,
            "run_dir": None,
            "training": None,
        }
        ours = pulumi.ResourceOptions(additional_secret_outputs=["nodes", "secret_environment"])
        super().__init__(TrainingRunProvider(), resource_name, props, pulumi.ResourceOptions.merge(opts, ours))
        self.training.apply(_report_error)


def _report_error(training: dict[str, Any] | None) -> None:
    """Fail the update (non-zero exit, for pipelines too) once the failed run is recorded in state."""
    if training and training.get("error"):
        raise pulumi.RunError(training["error"])

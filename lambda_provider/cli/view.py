"""What `up` shows while it runs: per node its phase, and while training step/total, vectors/s, FVU, ETA and the
dollars spent so far. Fed by engine events (the fleet's Instance, NodeStep and TrainingRun resources) and by the
progress records the program and the providers write (lambda_provider.progress)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pulumi import automation as auto

from lambda_provider.cli.engine import urn_name, urn_type
from lambda_provider.cli.format import duration, money, number
from training.changes import CACHE_TASK

INSTANCE = "pulumi-python:dynamic/lambda:Instance"
NODE_STEP = "pulumi-python:dynamic/fleet:NodeStep"
TRAINING_RUN = "pulumi-python:dynamic/fleet:TrainingRun"
# NodeStep name suffix -> (phase while it runs, phase once done)
STEP_PHASES = {
    "-ready": ("booting", "ready"),
    "-setup": ("setup", "set up"),
    "-train": ("starting trainer", "training"),
}
CHANGING = {
    auto.OpType.CREATE,
    auto.OpType.UPDATE,
    auto.OpType.REPLACE,
    auto.OpType.CREATE_REPLACEMENT,
    auto.OpType.IMPORT,
}
DELETING = {auto.OpType.DELETE, auto.OpType.DELETE_REPLACED}


@dataclass
class Node:
    name: str
    phase: str = "waiting"
    instance_type: str = ""
    region: str = ""
    ip: str = ""
    hourly_usd: float = 0.0
    created: float | None = None  # epoch seconds the instance was created (launched or first in the state)
    since: float = field(default_factory=time.time)

    def spent(self, now: float) -> float:
        return self.hourly_usd * max(0.0, now - self.created) / 3600.0 if self.created else 0.0


@dataclass
class Training:
    state: str = ""
    step: int = 0
    total_steps: int = 0
    vectors_per_second: float | None = None
    fvu: float | None = None
    task: str | None = None  # "cache": a training.cache run (its steps are chunks of windows)
    first: tuple[float, int] | None = None  # (time, step) of the first record, for the ETA
    last: tuple[float, int] | None = None

    def eta_seconds(self) -> float | None:
        if not (self.first and self.last and self.total_steps) or self.last[1] <= self.first[1]:
            return None
        rate = (self.last[1] - self.first[1]) / max(1e-6, self.last[0] - self.first[0])
        return max(0.0, (self.total_steps - self.step) / rate)


class FleetView:
    """The state behind the live view; thread safe (engine events and the progress tail arrive on other threads)."""

    def __init__(self, created: dict[str, float] | None = None, say: Callable[[str], None] | None = None) -> None:
        self.nodes: dict[str, Node] = {}
        self.training = Training()
        self.created = dict(created or {})  # instance resource name -> creation time from the state
        self.say = say  # plain mode: called with each line worth a line
        self._lock = threading.Lock()
        self._last_training_line = 0.0

    def node(self, name: str) -> Node:
        if name not in self.nodes:
            self.nodes[name] = Node(name)
        return self.nodes[name]

    def set_phase(self, name: str, phase: str) -> None:
        node = self.node(name)
        if node.phase == phase:
            return
        node.phase, node.since = phase, time.time()
        if self.say:
            extra = f"  {node.instance_type} {node.region} {node.ip}".rstrip() if phase in ("booting", "ready") else ""
            self.say(f"  {name:<10} {phase}{extra}")

    def on_event(self, event: auto.EngineEvent) -> None:
        with self._lock:
            if event.resource_pre_event is not None:
                self._step(event.resource_pre_event.metadata, done=False)
            elif event.res_outputs_event is not None:
                self._step(event.res_outputs_event.metadata, done=True)
            elif event.res_op_failed_event is not None:
                meta = event.res_op_failed_event.metadata
                name = urn_name(meta.urn)
                node = self._node_of(urn_type(meta.urn), name)
                if node:
                    self.set_phase(node, "failed")

    def _node_of(self, kind: str, name: str) -> str | None:
        if kind == INSTANCE:
            return name
        if kind == NODE_STEP:
            for suffix in STEP_PHASES:
                if name.endswith(suffix):
                    return name[: -len(suffix)]
        return None

    def _step(self, meta: auto.StepEventMetadata, done: bool) -> None:
        kind, name = urn_type(meta.urn), urn_name(meta.urn)
        changing, deleting, same = meta.op in CHANGING, meta.op in DELETING, meta.op == auto.OpType.SAME
        if kind == INSTANCE:
            state = meta.new or meta.old
            if state is not None:
                self._instance_facts(name, state.outputs or {})
            node = self.node(name)
            if deleting:
                self.set_phase(name, "terminated" if done else "terminating")
            elif changing and not done:
                node.created = time.time()  # launched now: it bills from here
                self.set_phase(name, "launching")
            elif changing:
                self.set_phase(name, "booting")
            elif same and node.created is None:
                node.created = self.created.get(name, time.time())
        elif kind == NODE_STEP:
            node = self._node_of(kind, name)
            suffix = next((s for s in STEP_PHASES if name.endswith(s)), None)
            if node and suffix and not deleting and (changing or same):
                running, finished = STEP_PHASES[suffix]
                self.set_phase(node, finished if done or same else running)
        elif kind == TRAINING_RUN and (changing or same):
            for node in self.nodes.values():
                if node.phase in ("set up", "starting trainer", "training", "waiting"):
                    self.set_phase(node.name, "training")
            if done and meta.new is not None:
                self._training_outputs(meta.new.outputs or {})

    def _instance_facts(self, name: str, outputs: dict[str, Any]) -> None:
        node = self.node(name)
        for attr, key in (("instance_type", "instance_type"), ("region", "region"), ("ip", "ip")):
            value = outputs.get(key)
            if isinstance(value, str) and value:
                setattr(node, attr, value)
        cents = outputs.get("price_cents_per_hour")
        if isinstance(cents, int | float) and not isinstance(cents, bool):
            node.hourly_usd = cents / 100.0

    def _training_outputs(self, outputs: dict[str, Any]) -> None:
        status = outputs.get("training") if isinstance(outputs.get("training"), dict) else outputs
        for key in ("state", "step", "total_steps"):
            if key in status and status[key] is not None:
                setattr(self.training, key, status[key])
        if self.training.state and self.training.state != "running":
            for node in self.nodes.values():
                if node.phase == "training":
                    self.set_phase(node.name, f"training {self.training.state}")

    def on_progress(self, record: dict[str, Any]) -> None:
        with self._lock:
            kind = record.get("kind")
            if kind == "node" and isinstance(record.get("node"), str) and isinstance(record.get("phase"), str):
                if isinstance(record.get("ip"), str) and record["ip"]:
                    self.node(record["node"]).ip = record["ip"]  # FleetNodes knows it once the boot ends
                self.set_phase(record["node"], record["phase"])
            elif kind == "training":
                self._training_record(record)
            elif kind == "data" and self.say:
                self.say(f"  data       {data_line(record)}")

    def _training_record(self, record: dict[str, Any]) -> None:
        t, now = self.training, float(record.get("time") or time.time())
        for key in ("state", "step", "total_steps", "vectors_per_second", "fvu", "task"):
            if record.get(key) is not None:
                setattr(t, key, record[key])
        if isinstance(t.step, int | float):
            t.first = t.first or (now, int(t.step))
            t.last = (now, int(t.step))
        if self.say and (time.monotonic() - self._last_training_line >= 5.0 or t.state in ("finished", "stopped")):
            self._last_training_line = time.monotonic()
            self.say(f"  training   {self.training_line(time.time())}")

    def spent(self, now: float) -> float:
        return sum(node.spent(now) for node in self.nodes.values())

    def hourly(self) -> float:
        return sum(node.hourly_usd for node in self.nodes.values() if node.phase not in ("terminated",))

    def training_line(self, now: float) -> str:
        t = self.training
        unit = "caching activations, chunk" if t.task == CACHE_TASK else "step"
        parts = [f"{t.state or 'running'}", f"{unit} {t.step}/{t.total_steps or '?'}"]
        if t.vectors_per_second is not None:
            parts.append(f"{number(t.vectors_per_second, 0)} vec/s")
        if t.fvu is not None:
            parts.append(f"FVU {number(t.fvu)}")
        eta = t.eta_seconds()
        if eta is not None and t.state not in ("finished", "stopped"):
            parts.append(f"ETA {duration(eta)}")
        parts.append(f"{money(self.spent(now))} spent")
        return ", ".join(parts)

    def renderable(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        now = time.time()
        with self._lock:
            table = Table(box=None, pad_edge=False, header_style="bold")
            for column in ("node", "type", "region", "ip", "phase", "for", "$/h", "spent"):
                table.add_column(column)
            for node in sorted(self.nodes.values(), key=lambda n: n.name):
                style = {"failed": "red", "training": "green", "ready": "cyan"}.get(node.phase.split(" ")[0], "")
                table.add_row(
                    node.name,
                    node.instance_type,
                    node.region,
                    node.ip,
                    Text(node.phase, style=style),
                    duration(now - node.since),
                    money(node.hourly_usd) if node.hourly_usd else "",
                    money(node.spent(now)) if node.created else "",
                )
            parts: list[Any] = [table]
            if self.training.step or self.training.state:
                parts.append(Text(f"training: {self.training_line(now)}"))
            parts.append(Text(f"fleet: {money(self.hourly())}/h, {money(self.spent(now))} spent so far", style="dim"))
            return Group(*parts)


def data_line(record: dict[str, Any]) -> str:
    """A `data` progress record (lambda_provider/fleet/data_upload.py) as one line of the live view."""

    def mib(value: Any) -> str:
        return f"{float(value or 0) / 2**20:,.1f} MiB"

    return (
        f"{record.get('state') or 'sending'}: {record.get('done_files')}/{record.get('files')} files, "
        f"{mib(record.get('sent_bytes'))} of {mib(record.get('bytes'))} at {mib(record.get('bytes_per_second'))}/s"
    )

"""Provisioning benchmark: `python -m lambda_provider.bench_fleet --nodes 2,4,8,16` (the pinned `pulumi` CLI on PATH
or in .toolchain, as `make setup` writes it).

For each N, a fresh emulator (live rate limits scaled by `--time-scale`, the client paced like the dev stack) and a
throwaway N-node fleet stack (the project's own program, tiny CPU training launched but not waited for), then:

- `up`: the time from the first launch until every node has passed its ready gate, against its floor (one boot plus
  the launch spacing for the others: `active_seconds + launch_interval x (N - 1)`, both from the emulator's own
  catalogue x time scale); the whole `up`'s wall time; the API requests per second it sent, as served (429s
  included) and as the live equivalent (x time scale: the live limit is about 1 per second);
- at `--update-nodes` N: an instance-type change of every node (each node replaced), measured the same way;
- `destroy`: wall time and requests per second.

A node's ready gate is seen either as its `<node>-ready` step finishing (an engine event) or as the fleet's
`node ... ready` progress record (lambda_provider.progress), whichever the code under test writes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

from lambda_provider.emulator.catalog import load_catalog
from lambda_provider.emulator.testing import EmulatorHandle, running_emulator

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT = "bench"
STACK = "bench"
PASSPHRASE = "throwaway-bench-stack"
REGION = "us-east-1"
FIRST_TYPE, SECOND_TYPE = "gpu_1x_a10", "gpu_1x_a100_sxm4"
PROGRAM = f"""
from pathlib import Path
from lambda_provider.fleet.program import main
main(Path({str(REPO_ROOT)!r}))
"""
EMULATOR_CONFIG = {
    "quotas": {"instances_per_account": 64},
    "instance_types": {FIRST_TYPE: {"capacity": {REGION: 64}}, SECOND_TYPE: {"capacity": {REGION: 64}}},
}


BRINGS_UP = {auto.OpType.CREATE, auto.OpType.UPDATE, auto.OpType.REPLACE, auto.OpType.CREATE_REPLACEMENT}


@dataclass
class Observed:
    """Times (epoch seconds, as this process saw them or as the record says) of each node's ready gate passing."""

    ready: dict[str, float] = field(default_factory=dict)


@dataclass
class Measure:
    label: str
    nodes: int
    wall: float
    ok: bool
    requests: int
    throttled: int
    time_scale: float
    ready: float | None = None  # first launch -> every node past its ready gate
    floor: float | None = None
    error: str = ""

    @property
    def rate(self) -> float:
        return self.requests / self.wall if self.wall else 0.0

    @property
    def live_rate(self) -> float:
        return self.rate * self.time_scale


def pulumi_binary() -> str:
    toolchain = REPO_ROOT / ".toolchain"
    path = os.environ.get("PATH", "")
    if toolchain.is_file():
        path = f"{toolchain.read_text().strip()}{os.pathsep}{path}"
    found = shutil.which("pulumi", path=path)
    if found is None:
        raise SystemExit("bench_fleet: no `pulumi` CLI on PATH or in .toolchain: run `make setup` first")
    return found


def stack_config(nodes: int, instance_type: str, scale: float) -> dict[str, Any]:
    fleet = {
        "target": "emulator",
        "nodeGroups": [
            {
                "name": "node",
                "count": nodes,
                "placements": [{"instanceType": instance_type, "region": REGION}],
                "bootTimeoutSeconds": 600,
            }
        ],
        "filesystem": {"name": f"bench-{nodes}", "region": REGION},
        "training": {
            "config": "training/configs/tiny-cpu.yaml",
            "runName": "bench",
            "allowCpu": True,
            "waitMinutes": 0,
            "readyTimeoutSeconds": 120,
            # The trainer reads whole 8192-row chunks per rank: the synthetic pool grows with the world.
            "overrides": {
                "threads": 1,
                "total_vectors": 150_000,
                "eval_vectors": 4096,
                "plot": False,
                "synthetic_pool": max(65536, 8192 * nodes),
            },
        },
        "budget": {"maxUsdPerHour": 200, "maxHours": 1},
    }
    values = {f"{PROJECT}:{k}": v for k, v in fleet.items()}
    # The dev stack's client pacing: the live limits (1 request/s, 1 launch per 12 s) x the time scale.
    values.update(
        {
            "lambda:minRequestInterval": repr(1.0 * scale),
            "lambda:minLaunchInterval": repr(12.0 * scale),
            "lambda:pollInterval": repr(10.0 * scale),
            "lambda:retryBaseDelay": repr(4.0 * scale),
            "lambda:reconcileInterval": repr(10.0 * scale),
            "lambda:deleteTimeout": "300",
        }
    )
    return {"config": values}


class Project:
    def __init__(self, root: Path, emulator: EmulatorHandle) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "Pulumi.yaml").write_text(
            f"name: {PROJECT}\nruntime:\n  name: python\n  options:\n    virtualenv: {Path(sys.prefix)}\n"
        )
        (root / "__main__.py").write_text(PROGRAM)
        (root / ".state").mkdir(exist_ok=True)
        self.pulumi = pulumi_binary()
        self.env = {
            **os.environ,
            "PATH": f"{Path(self.pulumi).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PULUMI_BACKEND_URL": f"file://{root / '.state'}",
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_HOME": str(root / ".pulumi-home"),
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(root)]),
            "LAMBDA_API_URL": emulator.base_url,
            "LAMBDA_API_KEY": emulator.api_key,
        }
        self.run("stack", "init", STACK)

    def configure(self, config: dict[str, Any]) -> None:
        (self.root / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump(config))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        stack = [] if args[:2] == ("stack", "init") else ["--stack", STACK]
        return subprocess.run(
            [self.pulumi, *args, *stack, "--non-interactive"],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=True,
        )

    def stack(self, extra_env: dict[str, str]) -> auto.Stack:
        """The stack through the Automation API (its engine events stream live to `on_event`)."""
        command = auto.PulumiCommand(root=str(Path(self.pulumi).parent.parent), skip_version_check=True)
        workspace = auto.LocalWorkspace(
            work_dir=str(self.root),
            pulumi_home=self.env["PULUMI_HOME"],
            env_vars={**self.env, **extra_env},
            pulumi_command=command,
        )
        return auto.Stack.select(STACK, workspace)


def _tail(path: Path, observed: Observed, stop: threading.Event) -> None:
    offset = 0
    while True:
        finished = stop.is_set()
        try:
            with path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except OSError:
            data = b""
        end = data.rfind(b"\n") + 1
        offset += end
        for raw in data[:end].splitlines():
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if record.get("kind") == "node" and record.get("phase") == "ready":
                observed.ready.setdefault(str(record.get("node")), float(record.get("time") or time.time()))
        if finished:
            return
        stop.wait(0.05)


def _on_event(observed: Observed) -> Any:
    def note(event: auto.EngineEvent) -> None:
        outputs = event.res_outputs_event
        if outputs is not None and outputs.metadata.op in BRINGS_UP:
            urn = outputs.metadata.urn
            if "fleet:NodeStep::" in urn and urn.endswith("-ready"):
                observed.ready.setdefault(urn.rsplit("::", 1)[1][: -len("-ready")], time.time())

    return note


def operation(
    project: Project, emulator: EmulatorHandle, label: str, nodes: int, verb: str, launched_after: float | None = None
) -> Measure:
    """One `up` or `destroy` with the engine's events and the fleet's progress records followed."""
    progress_file = project.root / f"{label}.progress.jsonl"
    progress_file.unlink(missing_ok=True)
    observed, stop = Observed(), threading.Event()
    tail = threading.Thread(target=_tail, args=(progress_file, observed, stop), daemon=True)
    stack = project.stack({"LAMBDA_SAE_PROGRESS": str(progress_file)})
    before = emulator.control("GET", "/stats")
    started = time.time()
    tail.start()
    error = ""
    try:
        call = stack.up if verb == "up" else stack.destroy
        call(on_event=_on_event(observed), color="never")
    except auto.errors.CommandError as exc:
        error = str(exc)[-3000:]
    wall = time.time() - started
    stop.set()
    tail.join()
    after = emulator.control("GET", "/stats")
    measure = Measure(
        label,
        nodes,
        wall,
        not error,
        after["requests"] - before["requests"],
        after["throttled"] - before["throttled"],
        emulator.time_scale,
        error=error,
    )
    if launched_after is not None:
        launches = [
            float(doc["launched_at"])
            for doc in emulator.control("GET", "/state")["instances"]
            if float(doc.get("launched_at") or 0) >= launched_after
        ]
        if launches and len(observed.ready) >= nodes:
            measure.ready = max(observed.ready.values()) - min(launches)
    return measure


def floor_seconds(nodes: int, instance_type: str, scale: float) -> float:
    catalog = load_catalog()
    boot = catalog.instance_types[instance_type].active_seconds
    return (boot + catalog.rate_limits.launch_interval_seconds * (nodes - 1)) * scale


def bench(nodes: int, work: Path, scale: float, update: bool) -> list[Measure]:
    measures = []
    with running_emulator(work / "emulator", time_scale=scale, rate_limits=True, config=EMULATOR_CONFIG) as emulator:
        project = Project(work / "project", emulator)
        project.configure(stack_config(nodes, FIRST_TYPE, scale))
        up = operation(project, emulator, "up", nodes, "up", launched_after=time.time() - 1)
        up.floor = floor_seconds(nodes, FIRST_TYPE, scale)
        measures.append(up)
        if update and up.ok:
            project.configure(stack_config(nodes, SECOND_TYPE, scale))
            changed = operation(project, emulator, "type-change", nodes, "up", launched_after=time.time())
            changed.floor = floor_seconds(nodes, SECOND_TYPE, scale)
            measures.append(changed)
        measures.append(operation(project, emulator, "destroy", nodes, "destroy"))
    return measures


def report(measures: list[Measure]) -> str:
    lines = [
        f"{'operation':<12} {'N':>3} {'ready s':>8} {'floor s':>8} {'x floor':>8} {'wall s':>7} "
        f"{'req/s':>6} {'live req/s':>10} {'429s':>5}  ok"
    ]
    for m in measures:
        ready = f"{m.ready:8.1f}" if m.ready is not None else f"{'-':>8}"
        floor = f"{m.floor:8.1f}" if m.floor is not None else f"{'-':>8}"
        ratio = f"{m.ready / m.floor:8.2f}" if m.ready is not None and m.floor else f"{'-':>8}"
        lines.append(
            f"{m.label:<12} {m.nodes:>3} {ready} {floor} {ratio} {m.wall:7.1f} {m.rate:6.1f} {m.live_rate:10.2f} "
            f"{m.throttled:>5}  {'yes' if m.ok else 'NO'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambda_provider.bench_fleet", description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", default="2,4,8,16", help="comma-separated fleet sizes (default 2,4,8,16)")
    parser.add_argument("--time-scale", type=float, default=0.05, help="emulator time scale (default 0.05)")
    parser.add_argument("--update-nodes", default="8", help="sizes that also run the instance-type change (8)")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep projects and logs here (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.nodes.split(",") if n.strip()]
    updates = {int(n) for n in args.update_nodes.split(",") if n.strip()}
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    measures: list[Measure] = []
    for nodes in sizes:
        measures += bench(nodes, work / f"n{nodes}", args.time_scale, nodes in updates)
        print(report([m for m in measures if m.nodes == nodes]).split("\n", 1)[1], flush=True)
    print(f"\ntime scale {args.time_scale}; work dir {work}\n{report(measures)}")
    failed = [m for m in measures if not m.ok]
    for m in failed:
        print(f"\n--- {m.label} N={m.nodes} failed ---\n{m.error}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps([{**m.__dict__, "rate": m.rate, "live_rate": m.live_rate} for m in measures]))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

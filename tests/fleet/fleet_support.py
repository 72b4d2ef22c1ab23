"""A fleet stack for tests: the real `pulumi` CLI runs the project's program against the real emulator, the steps
log in over real SSH, and the real trainer runs (emulated nodes, torchrun over gloo on loopback)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from lambda_provider.emulator.testing import EmulatorHandle, running_emulator
from tests.pulumi_support import REPO_ROOT, PulumiProject, fleet_program

A10 = {"instanceType": "gpu_1x_a10", "region": "us-east-1"}
A100 = {"instanceType": "gpu_1x_a100_sxm4", "region": "us-east-1"}
FAST_CLIENT = {  # the client's pacing and polls, shortened for the emulator (every fleet test stack sets them)
    "lambda:minRequestInterval": "0",
    "lambda:minLaunchInterval": "0",
    "lambda:pollInterval": "0.2",
    "lambda:retryBaseDelay": "0.05",
    "lambda:deleteTimeout": "60",
    "lambda:reconcileInterval": "0.2",
}


def stack_config(
    placements: list[dict[str, str]],
    *,
    count: int = 2,
    run_name: str = "e2e",
    filesystem: str = "sae-e2e",
    **training: Any,
) -> dict[str, Any]:
    train = {
        "config": "training/configs/tiny-cpu.yaml",
        "runName": run_name,
        "allowCpu": True,
        "waitMinutes": 4,
        "readyTimeoutSeconds": 15,
        "overrides": {
            "threads": 1,
            "total_vectors": 150_000,
            "checkpoint_every": 50,
            "log_every": 25,
            "eval_vectors": 4096,
            "plot": False,
        },
    }
    overrides = training.pop("overrides", {})
    train.update(training)
    train["overrides"] = {**train["overrides"], **overrides}
    return {
        "target": "emulator",
        "nodeGroups": [{"name": "node", "count": count, "placements": placements, "bootTimeoutSeconds": 8}],
        "filesystem": {"name": filesystem, "region": "us-east-1"},
        "training": train,
        "budget": {"maxUsdPerHour": 10, "maxHours": 1},
    }


class Fleet:
    def __init__(self, project: PulumiProject, emulator: EmulatorHandle, filesystem: str = "sae-e2e") -> None:
        self.project, self.emulator, self.filesystem = project, emulator, filesystem
        self.stack_file = project.root / f"Pulumi.{project.stack}.yaml"
        self.base = yaml.safe_load(self.stack_file.read_text()) or {}

    def configure(self, config: dict[str, Any]) -> None:
        values = {f"throwaway:{k}": v for k, v in config.items()}
        values.update(FAST_CLIENT)
        self.stack_file.write_text(yaml.safe_dump({**self.base, "config": values}))

    def up(self) -> str:
        result = self.up_result()
        return result.stdout + result.stderr

    def up_result(self) -> subprocess.CompletedProcess[str]:
        return self.project.run("up", "--yes", "--skip-preview", check=False, timeout=400)

    def preview(self) -> subprocess.CompletedProcess[str]:
        return self.project.run("preview", "--diff", check=False, timeout=300)

    def live_instances(self) -> list[dict[str, Any]]:
        return [
            i
            for i in self.emulator.api("GET", "/instances").body["data"]
            if i["status"] not in ("terminated", "terminating")
        ]

    def node_home(self, node: str) -> Path:
        inst = next(i for i in self.live_instances() if i["name"].endswith(node))
        return Path(self.emulator.instance_paths(inst["id"])["home"])

    def runs_dir(self) -> Path:
        fs = next(f for f in self.emulator.api("GET", "/file-systems").body["data"] if f["name"] == self.filesystem)
        return self.emulator.data_dir / "filesystems" / fs["id"] / "runs"

    def run_dir(self, name: str = "e2e") -> Path:
        return self.runs_dir() / name

    def kill_trainer(self, node: str) -> None:
        """SIGKILL every process of `node`'s trainer (torchrun and its workers), as an OOM kill of the box would."""
        home = str(self.node_home(node) / "lambda-sae")
        tag = f"FLEET_TRAINER_TAG={home}".encode()
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                if tag in environ.read_bytes().split(b"\0"):
                    os.kill(int(environ.parent.name), signal.SIGKILL)
            except (OSError, ValueError):
                continue


def fleet_project(
    root: Path, emulator: EmulatorHandle, *, name: str = "throwaway", stack: str = "test", repo_root: Path = REPO_ROOT
) -> PulumiProject:
    """A throwaway project in `root` running the fleet program against `emulator` (its URL and API key)."""
    env = {"LAMBDA_API_URL": emulator.base_url, "LAMBDA_API_KEY": emulator.api_key}
    return PulumiProject.create(root, fleet_program(repo_root), name=name, stack=stack, env=env)


@contextmanager
def fleet_on_emulator(
    root: Path, *, filesystem: str = "sae-e2e", emulator_config: dict[str, Any] | None = None
) -> Iterator[Fleet]:
    """A fleet of its own: a fresh emulator process on root/emulator (time scale 0.01) and a throwaway fleet project
    on root/project; on exit the stack is destroyed, then the emulator stopped."""
    with running_emulator(root / "emulator", time_scale=0.01, config=emulator_config) as emulator:
        project = fleet_project(root / "project", emulator)
        try:
            yield Fleet(project, emulator, filesystem=filesystem)
        finally:
            project.run("destroy", "--yes", check=False, timeout=300)


def run_status(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}  # not written yet, or caught mid-rename


def assert_clean_up(output: str) -> None:
    assert " errored" not in output, f"a resource errored:\n{output[-4000:]}"
    assert "**failed**" not in output, f"the update failed:\n{output[-4000:]}"

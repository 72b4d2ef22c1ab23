"""The real fleet program (`lambda_provider.fleet.program.main`, the `GpuFleet`) on a throwaway stack against the
emulator, for the pipeline steps under the real `pulumi` CLI.

One stack per module, `up` once: each test changes the stack config the way a pull request would (one thing at a
time) and previews it; `base()` puts the reviewed config back. The config keeps `up` fast: tiny CPU training that
is launched but not waited for (`training.waitMinutes: 0`), short boots (emulator time scale 0.003).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lambda_provider.emulator.testing import EmulatorHandle, running_emulator
from tests.fleet.fleet_support import FAST_CLIENT, fleet_project
from tests.pulumi_support import PulumiProject

API_KEY = "secret_gitops-test_7d2e4f6a8b0c1e3f.5a6b7c8d9e0f1a2b3c4d5e6f"  # stack secret: never shown in clear
PROJECT = "lambda-sae"
STACK = "dev"

REGION = "us-east-3"  # GH200 (arm64) runs only there, and a fleet's nodes share the filesystem's region
A10 = {"instanceType": "gpu_1x_a10", "region": REGION}
A100 = {"instanceType": "gpu_1x_a100_sxm4", "region": REGION}
GH200 = {"instanceType": "gpu_1x_gh200", "region": REGION}
# The emulator's catalogue, plus A10 and A100 capacity in us-east-3 (capacity maps replace whole).
EMULATOR_CONFIG = {
    "lifecycle": {"terminate_available_seconds": 0, "terminating_seconds": 1},
    "instance_types": {
        "gpu_1x_a10": {"capacity": {"us-east-1": 8, "us-west-1": 8, REGION: 8}},
        "gpu_1x_a100_sxm4": {"capacity": {"us-east-1": 4, "us-west-2": 4, REGION: 4}},
    },
}

BASE_CONFIG: dict[str, Any] = {
    "target": "emulator",
    "nodeGroups": [{"name": "node", "count": 2, "placements": [A10], "bootTimeoutSeconds": 30}],
    "filesystem": {"name": "sae-gitops", "region": REGION},
    "training": {
        "config": "training/configs/tiny-cpu.yaml",
        "runName": "gitops",
        "allowCpu": True,
        "waitMinutes": 0,
        "readyTimeoutSeconds": 30,
        "overrides": {
            "threads": 1,
            "batch_size": 768,
            "total_vectors": 20480,
            "eval_vectors": 1024,
            "log_every": 10,
            "checkpoint_every": 10,
            "plot": False,
        },
    },
    "budget": {"maxUsdPerHour": 10, "maxHours": 2},
}  # batch_size 768: divisible by every world size the tests make (2, 3, 6 nodes)


def base_config() -> dict[str, Any]:
    return copy.deepcopy(BASE_CONFIG)


class FleetStack:
    def __init__(self, project: PulumiProject, emulator: EmulatorHandle) -> None:
        self.project, self.emulator = project, emulator
        self.stack_file = project.root / f"Pulumi.{project.stack}.yaml"

    def configure(self, config: dict[str, Any]) -> None:
        """Replace the stack's `lambda-sae:*` config (the API key secret and the client pacing stay)."""
        current = yaml.safe_load(self.stack_file.read_text()) or {}
        values = {k: v for k, v in (current.get("config") or {}).items() if not k.startswith(f"{PROJECT}:")}
        values.update(FAST_CLIENT)
        values.update({f"{PROJECT}:{k}": v for k, v in config.items()})
        self.stack_file.write_text(yaml.safe_dump({**current, "config": values}, sort_keys=True))

    def base(self) -> None:
        self.configure(base_config())

    def step(
        self, name: str, *args: str, check: bool = False, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`python -m lambda_provider.gitops.<name> ARGS` in the project directory, as a workflow runs it."""
        env = {**os.environ, **self.project.env, **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", f"lambda_provider.gitops.{name}", *args],
            cwd=self.project.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def up(self) -> None:
        self.project.run("up", "--yes", "--skip-preview", timeout=400)

    def live_instances(self) -> list[dict[str, Any]]:
        data = self.emulator.api("GET", "/instances").body["data"]
        return [i for i in data if i["status"] not in ("terminated", "terminating")]

    def outputs(self) -> dict[str, Any]:
        return json.loads(self.project.run("stack", "output", "--json").stdout)


@pytest.fixture(scope="session")
def gitops_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    with running_emulator(
        tmp_path_factory.mktemp("gitops-emulator"), time_scale=0.003, config=EMULATOR_CONFIG, api_key=API_KEY
    ) as handle:
        yield handle


def make_stack(root: Path, emulator: EmulatorHandle) -> FleetStack:
    project = fleet_project(root, emulator, name=PROJECT, stack=STACK)
    project.config_set("lambda:apiKey", emulator.api_key, secret=True)
    stack = FleetStack(project, emulator)
    stack.base()
    return stack


@pytest.fixture(scope="module")
def deployed_fleet(tmp_path_factory: pytest.TempPathFactory, gitops_emulator: EmulatorHandle) -> Iterator[FleetStack]:
    """The fleet, up on a fresh emulator account, with the base config back in place before each use."""
    gitops_emulator.reset()
    stack = make_stack(tmp_path_factory.mktemp("gitops") / "project", gitops_emulator)
    stack.up()
    yield stack
    stack.project.run("destroy", "--yes", check=False, timeout=400)


@pytest.fixture
def fleet_stack(deployed_fleet: FleetStack) -> FleetStack:
    deployed_fleet.base()
    return deployed_fleet

"""A small stack of the real Lambda resources (SshKey, Filesystem, Instances) on the emulator, for the pipeline
steps under the real `pulumi` CLI. The node list, types, regions and a `training` input come from stack config,
so the tests change exactly one thing at a time, as a pull request would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lambda_provider.emulator.testing import EmulatorHandle, running_emulator
from tests.pulumi_support import REPO_ROOT, PulumiProject

API_KEY = "secret_gitops-test_7d2e4f6a8b0c1e3f.5a6b7c8d9e0f1a2b3c4d5e6f"
GITOPS = REPO_ROOT / "scripts" / "gitops"

PROGRAM = '''
import pulumi

from lambda_provider.resources import Filesystem, Instance, SshKey

config = pulumi.Config("lambda-sae")
key = SshKey("key")
fs = Filesystem("fs", name=f"{pulumi.get_stack()}-ckpt", region="us-east-1",
                opts=pulumi.ResourceOptions(retain_on_delete=True))
prices = []
for node in config.require_object("nodes"):
    fs_names = [fs.name] if node["region"] == "us-east-1" else []
    inst = Instance(node["name"], ssh_key_name=key.name, instance_type=node["type"], region=node["region"],
                    file_system_names=fs_names, user_data=config.get_secret("userData"),
                    tags={"training": config.get("training") or "none"},
                    opts=pulumi.ResourceOptions(depends_on=[fs]))
    prices.append(inst.price_cents_per_hour)
pulumi.export("hourly_cost_usd", pulumi.Output.all(*prices).apply(lambda p: sum(x or 0 for x in p) / 100))
expires = config.get("expiresAt")
if expires:
    pulumi.export("expires_at", expires)
'''

USER_DATA_SECRET = "gitops-user-data-secret-123"  # a secret config value no output may show in clear
TWO_A10 = [{"name": "node-0", "type": "gpu_1x_a10", "region": "us-east-1"},
           {"name": "node-1", "type": "gpu_1x_a10", "region": "us-east-1"}]


@pytest.fixture(scope="module")
def gitops_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    config = {"lifecycle": {"terminate_available_seconds": 0, "terminating_seconds": 1}}
    with running_emulator(tmp_path_factory.mktemp("gitops-emulator"), time_scale=0.003, config=config,
                          api_key=API_KEY) as handle:
        yield handle


@dataclass
class FleetStack:
    project: PulumiProject
    emulator: EmulatorHandle

    def set_nodes(self, nodes: list[dict[str, str]]) -> None:
        self.project.run("config", "set", "--path", "lambda-sae:nodes", json.dumps(nodes), "--plaintext")

    def set_config(self, key: str, value: str, *, secret: bool = False) -> None:
        self.project.config_set(key, value, secret=secret)

    def script(self, name: str, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.project.env}
        proc = subprocess.run([sys.executable, str(GITOPS / name), *args], cwd=self.project.root, env=env,
                              capture_output=True, text=True, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"{name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def live_instances(self) -> list[dict]:
        data = self.emulator.api("GET", "/instances").body["data"]
        return [i for i in data if i["status"] not in ("terminated", "terminating")]


def make_stack(root: Path, emulator: EmulatorHandle, stack: str = "dev") -> FleetStack:
    env = {"LAMBDA_API_KEY": emulator.api_key, "LAMBDA_API_URL": emulator.base_url,
           "LAMBDA_MIN_REQUEST_INTERVAL": "0", "LAMBDA_MIN_LAUNCH_INTERVAL": "0", "LAMBDA_POLL_INTERVAL": "0.2",
           "LAMBDA_RETRY_BASE_DELAY": "0.1", "LAMBDA_RECONCILE_INTERVAL": "0.2", "LAMBDA_DELETE_TIMEOUT": "60"}
    project = PulumiProject.create(root, PROGRAM, name="lambda-sae", stack=stack, env=env)
    fleet = FleetStack(project, emulator)
    fleet.set_nodes(TWO_A10)
    fleet.project.run("config", "set", "--path", "lambda-sae:budget.maxUsdPerHour", "10")
    fleet.project.run("config", "set", "--path", "lambda-sae:budget.maxHours", "2")
    fleet.set_config("lambda-sae:training", "tiny-cpu")
    fleet.set_config("lambda-sae:userData", f"#!/bin/sh\necho token={USER_DATA_SECRET}", secret=True)
    return fleet


@pytest.fixture
def fleet_stack(tmp_path: Path, gitops_emulator: EmulatorHandle) -> Iterator[FleetStack]:
    gitops_emulator.reset()
    stack = make_stack(tmp_path / "project", gitops_emulator)
    yield stack
    stack.project.run("destroy", "--yes", check=False)

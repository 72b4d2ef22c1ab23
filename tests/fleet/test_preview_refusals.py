"""`pulumi preview` refuses, before anything bills, what cannot work; and the shipped example stacks preview cleanly.

The real CLI runs the project's program against the real emulator. A refusal must name the stack config key and the
fix, and leave the account as it was: no instance, no SSH key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncssh
import pytest
import yaml

from lambda_provider.emulator.testing import EmulatorHandle
from tests.fleet.fleet_support import fleet_project
from tests.pulumi_support import REPO_ROOT

PROJECT = "lambda-sae"  # the shipped stacks' namespace, kept as it is
GH200 = {"instanceType": "gpu_1x_gh200", "region": "us-east-3"}
A100 = {"instanceType": "gpu_1x_a100_sxm4", "region": "us-east-3"}


def key_pair(directory: Path) -> tuple[Path, Path]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / "id_ed25519", directory / "id_ed25519.pub"
    private.write_bytes(key.export_private_key())
    public.write_bytes(key.export_public_key())
    return public, private


def emulator_stack(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "target": "emulator",
        "nodeGroups": [{"name": "gpu", "count": 2, "placements": [GH200]}],
        "filesystem": {"name": "sae-refusals", "region": "us-east-3"},
        "training": {"config": "training/configs/tiny-cpu.yaml", "allowCpu": True},
        "budget": {"maxUsdPerHour": 10, "maxHours": 1},
    }
    config.update(changes)
    return {f"{PROJECT}:{key}": value for key, value in config.items()}


class Preview:
    def __init__(self, root: Path, emulator: EmulatorHandle, stack: str = "test", repo_root: Path = REPO_ROOT) -> None:
        self.emulator = emulator
        self.project = fleet_project(root, emulator, name=PROJECT, stack=stack, repo_root=repo_root)
        self.stack_file = root / f"Pulumi.{stack}.yaml"
        self.base = yaml.safe_load(self.stack_file.read_text()) or {}

    def run(self, config: dict[str, Any]) -> tuple[int, str]:
        self.stack_file.write_text(yaml.safe_dump({**self.base, "config": config}))
        result = self.project.run("preview", check=False, timeout=300)
        return result.returncode, result.stdout + result.stderr

    def account_is_empty(self) -> bool:
        return not any(self.emulator.api("GET", path).body["data"] for path in ("/instances", "/ssh-keys"))


@pytest.fixture
def preview(tmp_path: Path, emulator: EmulatorHandle) -> Preview:
    return Preview(tmp_path / "project", emulator)


def test_a_key_pair_whose_halves_differ_is_refused_and_nothing_is_created(tmp_path: Path, preview: Preview) -> None:
    public, _ = key_pair(tmp_path / "one")
    _, other = key_pair(tmp_path / "two")
    code, output = preview.run(emulator_stack(sshKey={"publicKeyPath": str(public), "privateKeyPath": str(other)}))
    assert code != 0
    assert f"sshKey.privateKeyPath: {other} (key SHA256:" in output
    assert f"ssh-keygen -y -f {other} > {public}" in output
    assert preview.account_is_empty()


def test_a_huge_count_reports_the_budget_first_then_the_node_bound(preview: Preview) -> None:
    code, output = preview.run(emulator_stack(nodeGroups=[{"name": "gpu", "count": 100000, "placements": [GH200]}]))
    assert code != 0
    budget = output.find("the plan costs up to $229000.00/h, over budget.maxUsdPerHour $10.00/h")
    bound = output.find("nodeGroups[0].count: 100000 nodes in all")
    assert 0 <= budget < bound, output[-3000:]
    assert "batch_size" not in output
    assert preview.account_is_empty()


def test_placements_spanning_architectures_are_refused_naming_the_key(preview: Preview) -> None:
    code, output = preview.run(emulator_stack(nodeGroups=[{"name": "gpu", "count": 2, "placements": [GH200, A100]}]))
    assert code != 0
    assert "nodeGroups[0].placements: the acceptable placements span CPU architectures" in output
    assert "training.allowMixedArchitectures: true" in output


def test_a_training_config_that_is_a_list_is_refused_without_a_traceback(
    tmp_path: Path, emulator: EmulatorHandle
) -> None:
    repo = tmp_path / "repo"  # the program's repo root: training.config resolves under its training/
    bad = repo / "training" / "configs" / "list.yaml"
    bad.parent.mkdir(parents=True)
    bad.write_text("- batch_size: 1024\n")
    preview = Preview(tmp_path / "project", emulator, repo_root=repo)
    code, output = preview.run(emulator_stack(training={"config": "training/configs/list.yaml"}))
    assert code != 0
    assert f"training.config: {bad} holds a list, not a mapping of trainer keys" in output
    assert "Traceback" not in output


def shipped_stack(path: Path, public_key: Path, private_key: Path) -> dict[str, Any]:
    """The stack as shipped, aimed at the emulator, at a key pair and at local data (a file, or a directory with a
    file, where the stack's `data` names them: the user brings their own) that exist here."""
    config = dict(yaml.safe_load(path.read_text())["config"])
    config[f"{PROJECT}:target"] = "emulator"
    config[f"{PROJECT}:sshKey"] = {"publicKeyPath": str(public_key), "privateKeyPath": str(private_key)}
    data = config.get(f"{PROJECT}:data") or {}
    for dest, source in data.items():
        local = public_key.parent / "data" / source
        if Path(source).suffix:
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text("some text\n")
        else:
            local.mkdir(parents=True, exist_ok=True)
            (local / "shard-0.safetensors").write_bytes(b"0" * 64)
        data[dest] = str(local)
    return config


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "stacks").glob("Pulumi.*.yaml")), ids=lambda p: p.name)
def test_every_shipped_stack_previews_cleanly(tmp_path: Path, emulator: EmulatorHandle, path: Path) -> None:
    stack = path.name.split(".")[1]
    preview = Preview(tmp_path / "project", emulator, stack=stack)
    code, output = preview.run(shipped_stack(path, *key_pair(tmp_path / "keys")))
    assert code == 0, output[-3000:]
    assert preview.account_is_empty()

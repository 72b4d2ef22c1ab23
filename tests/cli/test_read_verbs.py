"""The read verbs through the real CLI (`python -m lambda_provider.cli ...` as a subprocess) on one small emulator
stack brought up once for the module with the real `pulumi` CLI: status and cost (spent so far grows), logs -f on a
running run, ssh (and the printed ssh command with StrictHostKeyChecking=yes), pull once the run finished."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import yaml

from lambda_provider.cli import nodes, ssh_files
from lambda_provider.cli.pull import verify
from tests.pulumi_support import REPO_ROOT, fleet_program, require_pulumi, tools_path, write_project
from training.outputs import load_sae, parse_sums

STACK = "readverbs"
PROJECT = "lambda-sae"
CONFIG = {
    "target": "emulator",
    "nodeGroups": [
        {
            "name": "node",
            "count": 1,
            "placements": [{"instanceType": "gpu_1x_a10", "region": "us-east-1"}],
            "bootTimeoutSeconds": 30,
        }
    ],
    "filesystem": {"name": "sae-readverbs", "region": "us-east-1"},
    "training": {
        "config": "training/configs/tiny-cpu.yaml",
        "runName": "rv",
        "allowCpu": True,
        "waitMinutes": 0,
        "readyTimeoutSeconds": 30,
        "overrides": {
            "threads": 1,
            "total_vectors": 1_200_000,
            "log_every": 50,
            "checkpoint_every": 500,
            "eval_vectors": 4096,
            "plot": True,
        },
    },
    "budget": {"maxUsdPerHour": 10, "maxHours": 1},
}
SPENT = re.compile(r"spent \$([0-9.,]+) so far")


@dataclass
class Stack:
    root: Path
    env: dict[str, str]

    def cli(self, verb: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lambda_provider.cli", verb, "--stack", STACK, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def outputs(self) -> dict[str, Any]:
        shown = self.pulumi("stack", "output", "--json", "--show-secrets")
        return json.loads(shown.stdout)

    def pulumi(self, *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [require_pulumi(), *args, "--stack", STACK, "--non-interactive"],
            cwd=self.root / "project",
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def training_state(self) -> dict[str, Any]:
        return json.loads(self.cli("status", "--json").stdout)["training"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_pulumi()
    root = tmp_path_factory.mktemp("readverbs")
    project = root / "project"
    write_project(project, fleet_program(), name=PROJECT)
    (project / "training").symlink_to(REPO_ROOT / "training")  # stack config paths are relative to the project
    values: dict[str, Any] = {f"{PROJECT}:{k}": v for k, v in CONFIG.items()}
    values.update(
        {
            "lambda:minRequestInterval": "0",
            "lambda:minLaunchInterval": "0",
            "lambda:pollInterval": "0.2",
            "lambda:retryBaseDelay": "0.05",
            "lambda:deleteTimeout": "60",
        }
    )
    (project / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump({"config": values}))
    (root / "home").mkdir()
    (root / "state").mkdir()
    env = {
        **os.environ,
        "PATH": tools_path(),
        "LAMBDA_SAE_ROOT": str(project),
        "EMULATOR_DIR": str(root / "emu"),
        "EMULATOR_PORT": "0",
        "EMULATOR_TIME_SCALE": "0.01",
        "PULUMI_BACKEND_URL": f"file://{root / 'state'}",
        "PULUMI_CONFIG_PASSPHRASE": "throwaway-test-stack",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_HOME": str(root / ".pulumi-home"),
        "HOME": str(root / "home"),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(project)]),
    }
    emulator = [sys.executable, "-m", "lambda_provider.emulator", "--data-dir", str(root / "emu")]
    started = subprocess.run(
        [*emulator, "--background", "--port", "0", "--time-scale", "0.01", "--no-rate-limit"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert started.returncode == 0, started.stderr
    env.update(dict(line.split("=", 1) for line in started.stdout.split() if "=" in line))
    handle = Stack(root, env)
    try:
        assert handle.pulumi("stack", "init").returncode == 0
        up = handle.pulumi("up", "--yes", "--skip-preview")
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield handle
    finally:
        ssh_files.forget(nodes.Fleet(STACK, {}, tuple(_nodes_of(handle)), None))  # the block in ~/.ssh/known_hosts
        handle.pulumi("destroy", "--yes", "--skip-preview", timeout=300)
        subprocess.run([*emulator, "--stop"], env=env, capture_output=True, timeout=60)


def _nodes_of(stack: Stack) -> list[nodes.Node]:
    try:
        raw = stack.outputs().get("nodes") or []
    except (ValueError, subprocess.SubprocessError):
        return []
    return [
        nodes.Node(
            n["node"],
            n["name"],
            n["node_rank"],
            n["ip"],
            *nodes.parse_ssh_command(n["ssh"])[1:3],
            key_path="",
            host_key=None,
        )
        for n in raw
    ]


def spent(text: str) -> float:
    match = SPENT.search(text)
    assert match, text
    return float(match.group(1).replace(",", ""))


def wait_for_state(stack: Stack, states: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while stack.training_state().get("state") not in states and time.monotonic() < deadline:
        time.sleep(2)


def test_status_shows_the_running_node_and_spend_that_grows(stack: Stack) -> None:
    wait_for_state(stack, {"running", "finished"}, 120)
    first = stack.cli("status")
    time.sleep(4)
    second = stack.cli("status")
    assert first.returncode == 0, first.stderr
    assert re.search(r"node-0\s+rank 0\s+gpu_1x_a10\s+us-east-1\s+\S+\s+active\s+(training|finished)", first.stdout), (
        first.stdout
    )
    assert re.search(r"training: (running, step \d+/\d+|finished)", first.stdout), first.stdout
    assert re.search(r"cost: \$\d+\.\d\d/h, spent \$", first.stdout), first.stdout
    assert spent(second.stdout) > spent(first.stdout)


def test_logs_follow_shows_step_lines_of_the_running_run(stack: Stack) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lambda_provider.cli", "logs", "-f", "--stack", STACK],
        cwd=stack.root,
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if re.match(r"step \d+/\d+ \| [0-9,]+ vec/s \| .*FVU", line):
                break
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert any(re.match(r"step \d+/\d+ \| ", line) for line in seen), "".join(seen)


def test_the_printed_ssh_command_runs_in_batch_mode_with_strict_host_keys(stack: Stack) -> None:
    through_cli = stack.cli("ssh", "node-0", "--", "echo", "hello-from-node")
    printed = stack.outputs()["nodes"][0]["ssh"]
    strict = printed.replace("ssh ", "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes ", 1) + " true"
    by_hand = subprocess.run(["bash", "-c", strict], env=stack.env, capture_output=True, text=True, timeout=60)
    key = stack.root / "home" / ".ssh" / f"lambda-sae-{STACK}"
    assert through_cli.returncode == 0, through_cli.stderr
    assert through_cli.stdout.strip() == "hello-from-node"
    assert key.stat().st_mode & 0o777 == 0o600
    assert by_hand.returncode == 0, f"{strict}\n{by_hand.stderr}"


def test_ssh_refuses_a_node_that_answers_with_another_host_key(stack: Stack) -> None:
    known = Path(stack.root / "home" / ".cache" / "lambda-sae" / STACK / "known_hosts")
    line = known.read_text().split()
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    forged = f"{line[0]} {other}\n"
    known.write_text(forged)
    shown = subprocess.run(
        [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-i",
            str(stack.root / "home" / ".ssh" / f"lambda-sae-{STACK}"),
            "-p",
            line[0].rsplit(":", 1)[1],
            f"ubuntu@{line[0][1:].split(']')[0]}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    rewritten = stack.cli("ssh", "node-0", "--", "true")
    assert shown.returncode == 255, shown.stdout[-3000:] + shown.stderr[-3000:]
    assert rewritten.returncode == 0, rewritten.stderr  # the verb writes the pinned key back from the state


def test_cost_shows_live_prices_the_plan_and_spend_that_grows(stack: Stack) -> None:
    first = stack.cli("cost")
    time.sleep(3)
    second = stack.cli("cost")
    estimate = stack.cli("cost", "gpu_1x_a10", "x3", "--hours", "2")
    assert first.returncode == 0, first.stderr
    assert re.search(r"node: 1 x gpu_1x_a10 \(us-east-1\) \$\d+\.\d\d/h each", first.stdout), first.stdout
    assert "plan worst case: $" in first.stdout, first.stdout[-3000:]
    assert spent(second.stdout) > spent(first.stdout)
    assert re.match(r"gpu_1x_a10 x3 for 2 h: \$(\d+\.\d\d)/h each, \$\d+\.\d\d/h, \$\d+\.\d\d in all", estimate.stdout)


def test_pull_gets_a_loadable_sae_without_checkpoints_sums_verified(stack: Stack) -> None:
    wait_for_state(stack, {"finished"}, 240)
    pulled = stack.cli("pull", str(stack.root / "sae"))
    local = stack.root / "sae"
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert "sha256 verified" in pulled.stdout, pulled.stdout[-3000:]
    assert "from training.outputs import load_sae" in pulled.stdout, pulled.stdout[-3000:]
    assert not (local / "checkpoints").exists()
    assert set(parse_sums((local / "SHA256SUMS").read_text())) >= {
        "sae.safetensors",
        "sae_config.json",
        "summary.json",
        "metrics.jsonl",
        "training_curves.png",
    }
    assert load_sae(local).W_dec.shape[1] == 64


def test_verify_names_a_file_that_differs_from_its_sum(stack: Stack, tmp_path: Path) -> None:
    local = stack.root / "sae"
    copy = tmp_path / "copy"
    shutil.copytree(local, copy)
    (copy / "summary.json").write_text("{}")
    problems = verify(copy, parse_sums((copy / "SHA256SUMS").read_text()))
    assert [p.split(":")[0] for p in problems] == ["summary.json"]


def test_refresh_reads_the_finished_run_back_into_the_outputs(stack: Stack) -> None:
    wait_for_state(stack, {"finished"}, 240)  # `up` returned while it trained (waitMinutes: 0): outputs said running
    refreshed = stack.cli("refresh")
    assert re.search(r"^  training: finished .*at step (\d+)/\1$", refreshed.stdout, re.M), refreshed.stdout[-3000:]

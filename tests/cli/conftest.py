"""The `lambda-sae` CLI for real: `python -m lambda_provider.cli` (what the console script runs) in a throwaway
project directory (LAMBDA_SAE_ROOT), with its own file backend and its own background emulator, which the CLI
starts the way `make up` does. Its stdout is a pipe, so the CLI prints plain lines (the CI mode)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fleet.fleet_support import FAST_CLIENT
from tests.pulumi_support import REPO_ROOT, TOOLCHAIN_FILE, fleet_program, require_pulumi, write_project

PROJECT = "lambda-sae"
STACK = "clitest"
# Engine variables of the caller (`make test` exports the Makefile's) must not leak into the throwaway project.
SCRUBBED = (
    "PULUMI_BACKEND_URL",
    "PULUMI_CONFIG_PASSPHRASE",
    "PULUMI_CONFIG_PASSPHRASE_FILE",
    "LAMBDA_API_URL",
    "LAMBDA_API_KEY",
    "LAMBDA_SAE_PROGRESS",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fleet_config(run_name: str = "cli", total_vectors: int = 30_000) -> dict[str, Any]:
    return {
        f"{PROJECT}:target": "emulator",
        f"{PROJECT}:nodeGroups": [
            {
                "name": "node",
                "count": 1,
                "bootTimeoutSeconds": 30,
                "placements": [{"instanceType": "gpu_1x_a10", "region": "us-east-1"}],
            }
        ],
        f"{PROJECT}:filesystem": {"name": "sae-cli", "region": "us-east-1"},
        f"{PROJECT}:training": {
            "config": "training/configs/tiny-cpu.yaml",
            "runName": run_name,
            "allowCpu": True,
            "waitMinutes": 4,
            "readyTimeoutSeconds": 30,
            "masterPort": free_port(),
            "overrides": {
                "threads": 1,
                "total_vectors": total_vectors,
                "eval_vectors": 1024,
                "log_every": 10,
                "checkpoint_every": 10,
                "plot": False,
            },
        },
        f"{PROJECT}:budget": {"maxUsdPerHour": 10, "maxHours": 2},
        **FAST_CLIENT,
    }


class CliProject:
    def __init__(self, root: Path) -> None:
        self.root = root
        write_project(root, fleet_program(), name=PROJECT)
        if TOOLCHAIN_FILE.is_file():
            (root / ".toolchain").write_text(TOOLCHAIN_FILE.read_text())
        self.env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        self.env.update(
            LAMBDA_SAE_ROOT=str(root),
            EMULATOR_DIR=str(root / ".emulator"),
            EMULATOR_PORT="0",
            EMULATOR_TIME_SCALE="0.01",
            PULUMI_HOME=str(root / ".pulumi-home"),
            PYTHONPATH=str(REPO_ROOT),
            PYTHONUNBUFFERED="1",
        )

    def configure(self, stack: str, config: dict[str, Any]) -> None:
        (self.root / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "lambda_provider.cli", *args]

    def cli(
        self,
        *args: str,
        timeout: float = 400,
        env: dict[str, str] | None = None,
        stdin: int | None = subprocess.DEVNULL,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            cwd=self.root,
            env={**self.env, **(env or {})},
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def emulator_env(self) -> dict[str, str]:
        text = (self.root / ".emulator" / "emulator.env").read_text()
        return dict(line.split("=", 1) for line in text.split() if "=" in line)

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        env = self.emulator_env()
        request = urllib.request.Request(
            env["LAMBDA_API_URL"].rstrip("/") + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {env['LAMBDA_API_KEY']}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["data"]

    def live_instances(self) -> list[dict[str, Any]]:
        return [i for i in self.api("GET", "/instances") if i["status"] not in ("terminated", "terminating")]

    def stop_emulator(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "lambda_provider.emulator", "--stop", "--data-dir", str(self.root / ".emulator")],
            env=self.env,
            capture_output=True,
            check=False,
            timeout=60,
        )


def kill_engines(root: Path) -> None:
    """Any engine or plugin process still running on this project (a failed test's), so the temp dir can go."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if b"pulumi" in (proc / "cmdline").read_bytes() and os.readlink(proc / "cwd") == str(root):
                os.kill(int(proc.name), signal.SIGKILL)
        except OSError:
            continue


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliProject]:
    require_pulumi()
    proj = CliProject(tmp_path_factory.mktemp("cli") / "project")
    try:
        yield proj
    finally:
        if (proj.root / ".emulator" / "emulator.env").is_file():
            proj.cli("destroy", "--stack", STACK, "--stop-emulator", timeout=300)
        proj.stop_emulator()
        kill_engines(proj.root)

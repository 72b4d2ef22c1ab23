"""Run the real `pulumi` CLI on throwaway stacks: a temp project, a file backend, passphrase secrets, no prompts."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLCHAIN_FILE = REPO_ROOT / ".toolchain"  # `make setup` writes the pinned tools' bin directories there
PULUMI_VERSION = "v3.259.0"
PASSPHRASE = "throwaway-test-stack"


def tools_path() -> str:
    """PATH with the pinned toolchain in front when `make setup` has written .toolchain (`make test` does the same)."""
    path = os.environ.get("PATH", "")
    if TOOLCHAIN_FILE.is_file():
        return f"{TOOLCHAIN_FILE.read_text().strip()}{os.pathsep}{path}"
    return path


def tool_missing(reason: str) -> NoReturn:
    """Skip loudly when a tool is absent; fail instead when the test command promised the toolchain (CI)."""
    if os.environ.get("LAMBDA_SAE_REQUIRE_PULUMI") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def kill_processes_in(root: Path) -> None:
    """SIGKILL every process whose cwd is `root`: provider hosts outlive a SIGKILLed CLI (own process group)."""
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            if Path(os.readlink(proc_dir / "cwd")) == root.resolve():
                os.kill(int(proc_dir.name), signal.SIGKILL)
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue


@functools.cache  # one `pulumi version` per test session, not one per CLI call
def pulumi_path() -> str | None:
    """The pinned `pulumi` on PATH or in .toolchain (scripts/install-pulumi builds it for `make test`), or None."""
    path = shutil.which("pulumi", path=tools_path())
    if path is None:
        return None
    version = subprocess.run([path, "version"], capture_output=True, text=True, check=False).stdout.strip()
    return path if version == PULUMI_VERSION else None


def require_pulumi() -> str:
    path = pulumi_path()
    if path is None:
        tool_missing(
            f"the pulumi CLI {PULUMI_VERSION} is not on PATH: run `make test` (it builds the toolchain "
            "with scripts/install-pulumi) or put its bin directory on PATH"
        )
    return path


def fleet_program(repo_root: Path = REPO_ROOT) -> str:
    """The project's program (the `GpuFleet`) as a throwaway project's __main__.py; stack config paths such as
    training.config resolve under `repo_root`."""
    return f"from pathlib import Path\nfrom lambda_provider.fleet.program import main\nmain(Path({str(repo_root)!r}))\n"


def write_project(root: Path, program: str, *, name: str) -> None:
    """A Pulumi project directory: Pulumi.yaml (this interpreter's virtualenv) and `program` as its __main__.py."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "Pulumi.yaml").write_text(
        f"name: {name}\nruntime:\n  name: python\n  options:\n    virtualenv: {Path(sys.prefix)}\n"
    )
    (root / "__main__.py").write_text(program)


@dataclass
class PulumiProject:
    """A Pulumi project directory with its own file backend; `run` calls the real CLI there."""

    root: Path
    stack: str = "test"
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        root: Path,
        program: str,
        *,
        name: str = "throwaway",
        files: dict[str, str] | None = None,
        stack: str = "test",
        env: dict[str, str] | None = None,
    ) -> PulumiProject:
        require_pulumi()
        write_project(root, program, name=name)
        for rel, text in (files or {}).items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        state = root / ".state"
        state.mkdir()
        project = cls(root=root, stack=stack, env=dict(env or {}))
        project.env.update(
            PATH=tools_path(),  # the CLI finds its language host, and scripts find the CLI, on PATH
            PULUMI_BACKEND_URL=f"file://{state}",
            PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
            PULUMI_SKIP_UPDATE_CHECK="true",
            PULUMI_HOME=str(root / ".pulumi-home"),
            PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(root)]),
        )
        project.run("stack", "init", stack)
        return project

    @property
    def state_dir(self) -> Path:
        return self.root / ".state"

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.env}
        stack = [] if args[:2] == ("stack", "init") else ["--stack", self.stack]
        cmd = [require_pulumi(), *args, *stack, "--non-interactive"]
        proc = subprocess.run(cmd, cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"`pulumi {' '.join(args)}` exited {proc.returncode}\n"
                f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
            )
        return proc

    def config_set(self, key: str, value: str, *, secret: bool = False) -> None:
        self.run("config", "set", key, value, *(["--secret"] if secret else []))

    def outputs(self) -> dict:
        return json.loads(self.run("stack", "output", "--json", "--show-secrets").stdout)

    def state_text(self) -> str:
        """Everything the backend stored (checkpoints, history, backups), for grepping."""
        return "\n".join(p.read_text(errors="replace") for p in self.state_dir.rglob("*") if p.is_file())

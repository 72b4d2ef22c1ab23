"""Run the `pulumi` CLI for the pipeline steps: one stack, no prompts, no colour, output captured."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        return (self.stdout + ("\n" + self.stderr if self.stderr.strip() else "")).strip()


def pulumi(*args: str, stack: str | None, cwd: Path, timeout: float = 1800) -> Result:
    cmd = ["pulumi", *args, "--non-interactive"]
    if stack is not None:
        cmd += ["--stack", stack]
    if args[0] not in ("config", "stack"):
        cmd += ["--color", "never"]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    return Result(tuple(cmd), proc.returncode, proc.stdout, proc.stderr)


def stack_config(stack: str, cwd: Path) -> dict:
    """The stack's config as `pulumi config --json` gives it (secrets stay hidden)."""
    result = pulumi("config", "--json", stack=stack, cwd=cwd)
    if not result.ok:
        raise SystemExit(f"`pulumi config --json --stack {stack}` failed:\n{result.output}")
    return {key: entry.get("objectValue", entry.get("value")) for key, entry in json.loads(result.stdout).items()}

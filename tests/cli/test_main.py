"""The dispatcher: `python -m lambda_provider.cli` as a user calls it."""

from __future__ import annotations

import subprocess
import sys

from tests.pulumi_support import REPO_ROOT


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lambda_provider.cli", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_lists_every_verb() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for verb in (
        "up",
        "preview",
        "refresh",
        "destroy",
        "instances",
        "reap",
        "restart",
        "status",
        "logs",
        "ssh",
        "pull",
        "cost",
    ):
        assert f"\n  {verb} " in result.stdout


def test_an_unknown_verb_exits_2_with_the_usage() -> None:
    result = cli("launch")
    assert result.returncode == 2
    assert "unknown verb 'launch'" in result.stderr
    assert "usage: lambda-sae VERB" in result.stderr


def test_a_stack_without_its_file_names_the_fix() -> None:
    result = cli("instances", "--stack", "no-such-stack")
    assert result.returncode == 2
    assert "stack 'no-such-stack' has no Pulumi.no-such-stack.yaml" in result.stderr
    assert "copy one of stacks/Pulumi.*.yaml" in result.stderr

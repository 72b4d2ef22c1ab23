"""The GitHub workflows pass actionlint (a real validator: expressions, contexts, action inputs, cron)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.pulumi_support import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT_CACHE = Path.home() / ".cache" / "lambda-sae" / "actionlint-v1.7.12" / "bin" / "actionlint"


def actionlint() -> str:
    found = shutil.which("actionlint") or (str(ACTIONLINT_CACHE) if ACTIONLINT_CACHE.exists() else None)
    if found:
        return found
    reason = "actionlint is not installed: run scripts/gitops/install-actionlint"
    if os.environ.get("LAMBDA_SAE_REQUIRE_PULUMI") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    # shellcheck/pyflakes are optional integrations, off so the result does not depend on what else is installed.
    return subprocess.run([actionlint(), "-no-color", "-shellcheck=", "-pyflakes=", *map(str, paths)],
                          capture_output=True, text=True, cwd=REPO_ROOT)


def test_the_three_workflows_exist_and_pass() -> None:
    assert {p.name for p in WORKFLOWS} == {"pulumi-preview.yml", "pulumi-up.yml", "pulumi-drift.yml"}
    result = lint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    text = (REPO_ROOT / ".github" / "workflows" / "pulumi-drift.yml").read_text()
    broken.write_text(text.replace('"17 */6 * * *"', '"61 * * * *"').replace("secrets.LAMBDA_API_KEY",
                                                                             "secret.LAMBDA_API_KEY"))
    result = lint(broken)
    assert result.returncode != 0
    assert "61" in result.stdout and "secret" in result.stdout

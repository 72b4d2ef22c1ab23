"""The GitHub workflows pass actionlint (a real validator: expressions, contexts, action inputs, cron)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.pulumi_support import REPO_ROOT, tool_missing, tools_path

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
# Where scripts/gitops/install-actionlint builds it.
CACHE_DIR = Path(os.environ.get("LAMBDA_SAE_CACHE") or Path.home() / ".cache" / "lambda-sae")
ACTIONLINT_CACHE = CACHE_DIR / "actionlint-v1.7.12" / "bin" / "actionlint"


def actionlint() -> str:
    if found := shutil.which("actionlint", path=tools_path()):
        return found
    if ACTIONLINT_CACHE.exists():
        return str(ACTIONLINT_CACHE)
    tool_missing("actionlint is not installed: run scripts/gitops/install-actionlint")


def lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    # shellcheck/pyflakes are optional integrations, off so the result does not depend on what else is installed.
    return subprocess.run(
        [actionlint(), "-no-color", "-shellcheck=", "-pyflakes=", *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )


def test_the_four_workflows_exist_and_pass() -> None:
    assert {p.name for p in WORKFLOWS} == {"pulumi-preview.yml", "pulumi-up.yml", "pulumi-drift.yml", "tests.yml"}
    result = lint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    text = (REPO_ROOT / ".github" / "workflows" / "pulumi-drift.yml").read_text()
    broken.write_text(
        text.replace('"17 */6 * * *"', '"61 * * * *"').replace("secrets.LAMBDA_API_KEY", "secret.LAMBDA_API_KEY")
    )
    result = lint(broken)
    assert result.returncode != 0
    assert "61" in result.stdout, f"the bad cron minute is not reported:\n{result.stdout}"
    assert "secret" in result.stdout, f"the misspelt secrets context is not reported:\n{result.stdout}"


def test_pull_requests_run_make_test() -> None:
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "tests.yml").read_text())
    assert workflow[True]["pull_request"]["branches"] == ["main"]  # YAML 1.1 reads the key `on` as True
    steps = workflow["jobs"]["test"]["steps"]
    assert [s["run"] for s in steps if s.get("name") == "make test"] == ["make test"]

"""The cost and capacity summary on generated `pulumi preview --json` documents (no CLI, no network)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from lambda_provider.client.models import InstanceTypeAvailability
from lambda_provider.gitops.markdown import error_headline, render_stack
from lambda_provider.gitops.pr_preview import comment
from lambda_provider.gitops.preview import FILESYSTEM_TYPE, INSTANCE_TYPE, PreviewError, parse_preview
from lambda_provider.gitops.summary import summarize
from tests.pulumi_support import REPO_ROOT


def availability(
    name: str, cents: int, gpus: int, regions: list[str], architecture: str = "x86_64"
) -> InstanceTypeAvailability:
    return InstanceTypeAvailability.from_api(
        name,
        {
            "instance_type": {
                "name": name,
                "price_cents_per_hour": cents,
                "specs": {"gpus": gpus},
                "architecture": architecture,
            },
            "regions_with_capacity_available": [{"name": r} for r in regions],
        },
    )


CATALOGUE = {
    "gpu_1x_gh200": availability("gpu_1x_gh200", 229, 1, ["us-east-3"], "arm64"),
    "gpu_1x_h100_pcie": availability("gpu_1x_h100_pcie", 329, 1, []),
    "gpu_1x_a10": availability("gpu_1x_a10", 129, 1, ["us-east-1"]),
    "gpu_1x_a100_sxm4": availability("gpu_1x_a100_sxm4", 199, 1, ["us-west-2"]),
    "gpu_8x_h100_sxm5": availability("gpu_8x_h100_sxm5", 2392, 8, []),
}


def urn(name: str, rtype: str = INSTANCE_TYPE) -> str:
    return f"urn:pulumi:prod::lambda-sae::{rtype}::{name}"


def instance_state(
    name: str,
    *,
    placements: list[dict[str, Any]],
    running: tuple[str, str, int] | None = None,
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "urn": urn(name),
        "type": INSTANCE_TYPE,
        "inputs": {"__provider": "[secret]", "placements": placements},
    }
    if running:
        state["outputs"] = {"instance_type": running[0], "region": running[1], "price_cents_per_hour": running[2]}
    return state


def step(op: str, name: str, old: dict | None = None, new: dict | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"op": op, "urn": urn(name)}
    if old:
        out["oldState"] = old
    if new:
        out["newState"] = new
    return out


A10 = [{"instance_type": "gpu_1x_a10", "region": "us-east-1"}]
GH200 = [{"instance_type": "gpu_1x_gh200", "region": "us-east-3"}]


def preview(*steps: dict[str, Any], budget: dict | None = None) -> str:
    config = {"lambda-sae:budget": json.dumps(budget)} if budget else {}
    return json.dumps({"config": config, "steps": list(steps), "changeSummary": {}})


def test_added_replaced_removed_and_unchanged_nodes_with_costs() -> None:
    running_a10 = instance_state("keep", placements=A10, running=("gpu_1x_a10", "us-east-1", 129))
    old_swap = instance_state("swap", placements=A10, running=("gpu_1x_a10", "us-east-1", 129))
    new_swap = instance_state("swap", placements=[{"instance_type": "gpu_1x_a100_sxm4", "region": None}])
    gone = instance_state("gone", placements=A10, running=("gpu_1x_a10", "us-east-1", 129))
    text = preview(
        step("same", "keep", running_a10, running_a10),
        step("create", "gh", None, instance_state("gh", placements=GH200)),
        step("delete-replaced", "swap", old_swap, None),
        step("replace", "swap", old_swap, new_swap),
        step("create-replacement", "swap", old_swap, new_swap),
        step("delete", "gone", gone, None),
        budget={"maxUsdPerHour": 5, "maxHours": 10},
    )
    summary = summarize(parse_preview(text), CATALOGUE)
    assert summary.stack == "prod"
    rows = {r.name: r for r in summary.rows}
    assert rows["keep"].change == "unchanged", rows["keep"]
    assert rows["keep"].capacity == "running", rows["keep"]
    assert rows["keep"].cents_after == 129, rows["keep"]
    assert rows["gh"].change == "added", rows["gh"]
    assert rows["gh"].instance_type == "gpu_1x_gh200", rows["gh"]
    assert rows["gh"].region == "us-east-3", rows["gh"]
    assert rows["gh"].capacity == "✅ available in us-east-3"
    assert rows["swap"].change == "replaced", rows["swap"]
    assert rows["swap"].region == "us-west-2", rows["swap"]
    assert rows["swap"].cents_after == 199, rows["swap"]
    assert rows["gone"].change == "removed", rows["gone"]
    assert rows["gone"].cents_after is None, rows["gone"]
    assert [summary.count(c) for c in ("added", "replaced", "removed")] == [1, 1, 1]
    assert summary.usd_per_hour_before == pytest.approx(3.87)
    assert summary.usd_per_hour_after == pytest.approx(1.29 + 2.29 + 1.99)
    assert summary.projected_usd == pytest.approx(55.7)
    assert summary.over_budget
    md = render_stack(summary)
    assert "**$/hour:** $3.87 → $5.57 (+$1.70)" in md
    assert "**Projected for 10 h:** $55.70" in md
    assert "❌ **over budget**" in md
    assert "__provider" not in md


def test_no_capacity_lists_alternates_and_fallbacks() -> None:
    wanted = [{"instance_type": "gpu_1x_gh200", "region": "us-east-1"}]
    text = preview(
        step("create", "a", None, instance_state("a", placements=wanted)),
        step("create", "b", None, instance_state("b", placements=[*wanted, *A10])),
        step(
            "create", "c", None, instance_state("c", placements=[{"instance_type": "gpu_8x_h100_sxm5", "region": None}])
        ),
    )
    rows = {r.name: r for r in summarize(parse_preview(text), CATALOGUE).rows}
    assert rows["a"].capacity == "❌ none now; no alternate has capacity either"
    assert rows["a"].cents_after == 229, "no capacity: priced at the wanted type"
    assert rows["b"].capacity == "⚠️ gpu_1x_gh200 in us-east-1 has none; falls back to gpu_1x_a10 in us-east-1"
    assert rows["c"].capacity == "❌ none now; no alternate has capacity either"


def test_alternates_are_only_types_the_node_could_use() -> None:
    """Same GPU count and architecture as a wanted type, in a region its placements allow: the GH200 (arm64), the
    8-GPU type and capacity outside a pinned region are left out."""
    text = preview(
        step("create", "free", None, instance_state("free", placements=[{"instance_type": "gpu_1x_h100_pcie"}])),
        step(
            "create",
            "pinned",
            None,
            instance_state("pinned", placements=[{"instance_type": "gpu_1x_h100_pcie", "region": "us-east-1"}]),
        ),
    )
    rows = {r.name: r for r in summarize(parse_preview(text), CATALOGUE).rows}
    assert rows["free"].capacity == (
        "❌ none now; alternates: gpu_1x_a10 in us-east-1 ($1.29/h), gpu_1x_a100_sxm4 in us-west-2 ($1.99/h)"
    )
    assert rows["pinned"].capacity == "❌ none now; alternates: gpu_1x_a10 in us-east-1 ($1.29/h)"


def test_rows_are_in_node_name_order_whatever_the_step_order() -> None:
    names = ["node-10", "gh-0", "node-2", "node-1"]
    text = preview(*(step("create", n, None, instance_state(n, placements=A10)) for n in names))
    assert [r.name for r in summarize(parse_preview(text), CATALOGUE).rows] == ["gh-0", "node-1", "node-2", "node-10"]


def test_filesystem_deletion_is_flagged_unless_retained() -> None:
    def fs(name: str, retained: bool) -> dict[str, Any]:
        return {
            "urn": urn(name, FILESYSTEM_TYPE),
            "type": FILESYSTEM_TYPE,
            "inputs": {"name": name},
            "retainOnDelete": retained,
        }

    text = json.dumps(
        {
            "steps": [
                {"op": "delete", "urn": urn("ckpt", FILESYSTEM_TYPE), "oldState": fs("ckpt", False)},
                {"op": "delete", "urn": urn("kept", FILESYSTEM_TYPE), "oldState": fs("kept", True)},
            ]
        }
    )
    summary = summarize(parse_preview(text), CATALOGUE)
    assert summary.filesystem_deletions == ("ckpt",)
    assert "⚠️ **filesystem `ckpt` would be deleted**" in render_stack(summary)


def test_bad_input_says_what_to_pass() -> None:
    with pytest.raises(PreviewError, match="pass the stdout of `pulumi preview --json`"):
        parse_preview("Previewing update (dev):")
    with pytest.raises(PreviewError, match="with a `steps` list"):
        parse_preview("[1, 2]")


def test_command_line_reads_files_and_reports_missing_capacity_source(tmp_path) -> None:
    path = tmp_path / "preview.json"
    path.write_text(
        preview(
            step("create", "gh", None, instance_state("gh", placements=GH200)),
            budget={"maxUsdPerHour": 5, "maxHours": 3},
        )
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "lambda_provider.gitops.plan", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert "### Stack `prod`: cost and capacity" in out
    assert "capacity unknown: LAMBDA_API_KEY is not set" in out
    bad = subprocess.run(
        [sys.executable, "-m", "lambda_provider.gitops.plan", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode != 0


def test_repository_cap_lowers_the_budget_verdict() -> None:
    text = preview(
        step("create", "gh", None, instance_state("gh", placements=GH200)), budget={"maxUsdPerHour": 5, "maxHours": 3}
    )
    assert not summarize(parse_preview(text), CATALOGUE).over_budget
    capped = summarize(parse_preview(text), CATALOGUE, cap_usd_per_hour=2)
    assert capped.over_budget, "a $2.00/h cap under a $2.29/h plan is over budget"
    assert "**Budget:** $2.00/h: ❌ **over budget**" in render_stack(capped), render_stack(capped)
    assert summarize(parse_preview(text), CATALOGUE, cap_usd_per_hour=50).max_usd_per_hour == 5


def test_preview_error_shows_the_problems_not_the_schema_after_them() -> None:
    error = (
        "error: invalid fleet stack config:\n  budget.maxHours: missing -- set budget.maxHours to a number\n\n"
        "Schema:\nlambda-sae:target  emulator | lambda"
    )
    assert error_headline(error) == (
        "error: invalid fleet stack config: budget.maxHours: missing -- set budget.maxHours to a number"
    )


def test_the_training_decision_line_is_in_the_pr_table() -> None:
    line = "training: restart from step 2200 with 3 rank(s) instead of 2 in runs/big"
    run_type = "pulumi-python:dynamic/fleet:TrainingRun"
    new = {"urn": urn("training", run_type), "type": run_type, "inputs": {"action": "resume", "change": line}}
    text = preview({"op": "update", "urn": urn("training", run_type), "oldState": new, "newState": new})
    summary = summarize(parse_preview(text), CATALOGUE)
    assert "**Training:** restart from step 2200 with 3 rank(s) instead of 2 in runs/big" in render_stack(summary)


def test_the_pr_comment_shows_no_encoded_blob() -> None:
    blob = "QUJD" * 60  # 240 characters of base64
    diff = f'    ~ environment: {{\n          ~ TRAIN_CONFIG_B64: "{blob}" => "{blob[::-1]}"\n'
    body = comment("dev", "table\n", True, diff, [])
    assert blob not in body
    assert '~ TRAIN_CONFIG_B64: "<240 characters of base64, not shown>"' in body

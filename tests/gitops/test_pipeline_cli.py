"""The pipeline steps for real: the pinned `pulumi` CLI, our scripts, the emulator over loopback."""

from __future__ import annotations

import json
import re

from tests.gitops.conftest import TWO_A10, USER_DATA_SECRET, FleetStack
from tests.pulumi_support import REPO_ROOT

POLICY = REPO_ROOT / "policy"

GH200 = {"name": "gh-0", "type": "gpu_1x_gh200", "region": "us-east-3"}


def test_pr_comment_for_an_added_gh200_node(fleet_stack: FleetStack) -> None:
    fleet_stack.project.run("up", "--yes")
    fleet_stack.set_nodes([*TWO_A10, GH200])

    result = fleet_stack.script("pr_preview.py", "--stack", "dev", "--policy-pack", str(POLICY), check=True)
    body = result.stdout
    assert body.startswith("<!-- lambda-sae:pulumi-preview -->")
    assert "preview succeeded" in body
    row = next(line for line in body.splitlines() if "`gh-0`" in line)
    assert "added" in row and "`gpu_1x_gh200`" in row and "us-east-3" in row
    assert "available in us-east-3" in row, "the capacity right now, from /instance-types"
    assert "$2.29" in row
    assert "**$/hour:** $2.58 → $4.87 (+$2.29)" in body, "before, after and the delta"
    assert "**Projected for 2 h:** $9.74" in body
    diff = body.split("```diff", 1)[1]
    assert "+ pulumi-python:dynamic/lambda:Instance: (create)" in diff
    assert "Instance::gh-0]" in diff
    assert "__provider" not in body and USER_DATA_SECRET not in body
    assert body.index("cost and capacity") < body.index("```diff"), "the table sits above the diff"


def test_policy_pack_blocks_an_over_budget_preview(fleet_stack: FleetStack) -> None:
    fleet_stack.project.run("up", "--yes")
    nodes = [*TWO_A10, *({"name": f"gh-{i}", "type": "gpu_1x_gh200", "region": "us-east-3"} for i in range(4))]
    fleet_stack.set_nodes(nodes)  # 2 x 1.29 + 4 x 2.29 = 11.74 $/h > 10 $/h

    config = fleet_stack.script("policy_config.py", "--stack", "dev", check=True).stdout
    (fleet_stack.project.root / "policy-config.json").write_text(config)
    result = fleet_stack.project.run("preview", "--policy-pack", str(POLICY), "--policy-pack-config",
                                     "policy-config.json", check=False, timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "[mandatory]  fleet-budget" in out
    assert "projected cost $23.48 for 2 h ($11.74/h" in out
    assert "exceeds the stack's budget $20.00" in out
    assert len(fleet_stack.live_instances()) == 2, "nothing launched"

    comment = fleet_stack.script("pr_preview.py", "--stack", "dev", "--policy-pack", str(POLICY))
    assert comment.returncode == 1
    assert "preview blocked" in comment.stdout and "over budget" in comment.stdout


def test_drift_check_fails_after_an_out_of_band_terminate(fleet_stack: FleetStack) -> None:
    fleet_stack.project.run("up", "--yes")
    clean = fleet_stack.script("drift_check.py", "--stack", "dev")
    assert clean.returncode == 0, clean.stdout + clean.stderr

    victim = next(i for i in fleet_stack.live_instances() if i["name"] == "dev-node-1")
    gone = fleet_stack.emulator.api("POST", "/instance-operations/terminate", {"instance_ids": [victim["id"]]})
    assert gone.status == 200, gone.body

    drift = fleet_stack.script("drift_check.py", "--stack", "dev")
    assert drift.returncode == 1
    assert "::error title=Drift in stack dev::" in drift.stdout
    assert re.search(r"\+ pulumi-python:dynamic/lambda:Instance: \(create\)\s+\[urn=\S+Instance::node-1\]",
                     drift.stdout), drift.stdout


def test_expiry_sweep_destroys_only_expired_stacks(fleet_stack: FleetStack) -> None:
    fleet_stack.set_config("lambda-sae:expiresAt", "2026-01-01T10:00:00Z")
    fleet_stack.project.run("up", "--yes")
    kept = fleet_stack.script("expiry_sweep.py", "--now", "2026-01-01T09:00:00Z", check=True)
    assert "stack dev: expires 2026-01-01T10:00:00+00:00, kept" in kept.stdout
    assert len(fleet_stack.live_instances()) == 2

    swept = fleet_stack.script("expiry_sweep.py", "--now", "2026-01-01T11:00:00Z", check=True)
    assert "stack dev: expired at 2026-01-01T10:00:00+00:00: destroying" in swept.stdout
    assert fleet_stack.live_instances() == []
    filesystems = fleet_stack.emulator.api("GET", "/file-systems").body["data"]
    assert [f["name"] for f in filesystems] == ["dev-ckpt"], "the retained filesystem keeps the checkpoints"
    assert json.loads(fleet_stack.project.run("stack", "output", "--json").stdout) == {}

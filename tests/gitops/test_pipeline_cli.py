"""The PR pipeline's steps for real on the real fleet program: the pinned `pulumi` CLI, our scripts, the policy
pack, the emulator over loopback. Each test changes the deployed fleet's config as a pull request would."""

from __future__ import annotations

import re
import subprocess

from tests.gitops.conftest import API_KEY, GH200, FleetStack, base_config
from tests.pulumi_support import REPO_ROOT

POLICY = REPO_ROOT / "policy"
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{80,}={0,2}")
CAP = {"LAMBDA_SAE_CAP_USD_PER_HOUR": "10"}  # the repository's cap, a CI variable


def policy_preview(fleet_stack: FleetStack, *allow_filesystem_deletion: str) -> subprocess.CompletedProcess[str]:
    """`pulumi preview` with the pack and the config `policy_config` writes, as the PR workflow runs it."""
    allow = ["--allow-filesystem-deletion", *allow_filesystem_deletion] if allow_filesystem_deletion else []
    policy_config = fleet_stack.step("policy_config", "--stack", "dev", *allow, check=True, env=CAP).stdout
    (fleet_stack.project.root / "policy-config.json").write_text(policy_config)
    return fleet_stack.project.run(
        "preview", "--policy-pack", str(POLICY), "--policy-pack-config", "policy-config.json", check=False, timeout=180
    )


def with_gh200_group(count: int) -> dict:
    config = base_config()
    config["nodeGroups"].append({"name": "gh", "count": count, "placements": [GH200]})
    config["training"]["allowMixedArchitectures"] = True  # arm64 GH200 beside x86_64 A10: a price mix, on purpose
    config["training"]["runName"] = "gh-run"  # a new run for the bigger fleet (nodes added to a finished run refuse)
    return config


def test_pr_comment_for_an_added_gh200_node(fleet_stack: FleetStack) -> None:
    fleet_stack.configure(with_gh200_group(1))

    result = fleet_stack.step("pr_preview", "--stack", "dev", "--policy-pack", str(POLICY), check=True)
    body = result.stdout
    assert body.startswith("<!-- lambda-sae:pulumi-preview -->")
    assert "preview succeeded" in body
    assert "Nodes: 1 added, 0 replaced, 0 removed." in body
    row = next(line for line in body.splitlines() if "`gh-0`" in line)
    assert "added" in row, row
    assert "`gpu_1x_gh200`" in row, row
    assert "us-east-3" in row, row
    assert "available in us-east-3" in row, "the capacity right now, from /instance-types"
    assert row.rstrip().endswith("| – | $2.29 |"), row
    for node in ("node-0", "node-1"):
        unchanged = next(line for line in body.splitlines() if f"`{node}`" in line)
        assert "running" in unchanged, unchanged
        assert "$1.29 | $1.29" in unchanged, unchanged
    assert "**$/hour:** $2.58 → $4.87 (+$2.29)" in body, "before, after and the delta"
    assert "**Projected for 2 h:** $9.74" in body
    assert "within budget" in body
    diff = body.split("```diff", 1)[1]
    assert "+ pulumi-python:dynamic/lambda:Instance: (create)" in diff
    assert "Instance::gh-0]" in diff, diff[-3000:]
    assert "FleetNodes::nodes]" in diff, diff[-3000:]
    assert "__provider" not in body, "the provider's settings show in the comment"
    assert API_KEY not in body, "the API key shows in the comment"
    assert "PRIVATE KEY" not in body, "a private key shows in the comment"
    assert BASE64_RUN.search(body) is None, "no encoded blob in the comment"
    nodes = [m.group(1) for m in re.finditer(r"^\| [^|]+ \| `([\w-]+)` \|", body, flags=re.M)]
    assert nodes == ["gh-0", "node-0", "node-1"], "rows in node name order"
    assert body.index("cost and capacity") < body.index("```diff"), "the table sits above the diff"
    assert len(fleet_stack.live_instances()) == 2, "a preview launches nothing"


def test_the_program_refuses_a_plan_over_the_stack_budget(fleet_stack: FleetStack) -> None:
    fleet_stack.configure(with_gh200_group(4))  # 2 x 1.29 + 4 x 2.29 = 11.74 $/h > 10 $/h

    comment = fleet_stack.step("pr_preview", "--stack", "dev", "--policy-pack", str(POLICY))
    assert comment.returncode == 1
    assert "preview blocked" in comment.stdout
    assert (
        "❌ preview error: error: the plan costs up to $11.74/h, over budget.maxUsdPerHour $10.00/h" in comment.stdout
    ), comment.stdout
    assert len(fleet_stack.live_instances()) == 2, "nothing launched"


def test_policy_pack_blocks_a_pr_that_raises_its_own_budget_past_the_cap(fleet_stack: FleetStack) -> None:
    config = with_gh200_group(4)
    config["budget"]["maxUsdPerHour"] = 20  # the program accepts 11.74 $/h; the repository cap (10 $/h) does not
    fleet_stack.configure(config)

    result = policy_preview(fleet_stack)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "[mandatory]  fleet-budget" in out
    assert "projected cost $23.48 for 2 h ($11.74/h" in out
    assert "gh-3 $2.29/h (up to gpu_1x_gh200)" in out, out
    assert "node-0 $1.29/h (gpu_1x_a10 running)" in out, out
    assert "exceeds the budget $20.00 ($10.00/h x 2 h, from the repository cap LAMBDA_SAE_CAP_USD_PER_HOUR)" in out
    assert len(fleet_stack.live_instances()) == 2, "nothing launched"

    comment = fleet_stack.step("pr_preview", "--stack", "dev", "--policy-pack", str(POLICY), env=CAP)
    assert comment.returncode == 1
    assert "preview blocked" in comment.stdout, comment.stdout
    assert "over budget" in comment.stdout, comment.stdout
    assert "**Budget:** $10.00/h" in comment.stdout

    without_cap = fleet_stack.step("pr_preview", "--stack", "dev", "--policy-pack", str(POLICY))
    assert without_cap.returncode == 0, without_cap.stdout


def test_policy_pack_passes_the_fleet_as_deployed(fleet_stack: FleetStack) -> None:
    """The fleet's instances carry owner project/stack/resource and its filesystem is retained: no violation."""
    result = policy_preview(fleet_stack)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "✅ lambda-sae@v0.0.1" in out, out
    assert "mandatory" not in out, out


def test_policy_pack_blocks_a_filesystem_deleted_on_destroy(fleet_stack: FleetStack) -> None:
    config = base_config()
    config["filesystem"]["deleteOnDestroy"] = True
    fleet_stack.configure(config)

    result = policy_preview(fleet_stack)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "[mandatory]  filesystem-keeps-checkpoints" in out, out
    assert "filesystem sae-gitops would be deleted on destroy" in out, out
    assert '"allow_filesystem_deletion": ["sae-gitops"]' in out, out


def test_policy_pack_lets_an_allowed_filesystem_deletion_through(fleet_stack: FleetStack) -> None:
    config = base_config()
    config["filesystem"]["deleteOnDestroy"] = True
    fleet_stack.configure(config)

    result = policy_preview(fleet_stack, "sae-gitops")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "mandatory" not in out, out

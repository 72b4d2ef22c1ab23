"""`pulumi preview --diff` of the real fleet for the four everyday changes: exactly the right resources replaced,
created or updated, the `old => new` line a reviewer looks for, no `__provider` noise, no secret in clear."""

from __future__ import annotations

import re

from tests.gitops.conftest import A100, API_KEY, FleetStack, base_config


# Per node: its Instance. Its boot, ready gate and setup are the fleet-level `nodes` (FleetNodes, one entry per node);
# the training launch is the fleet-level `training` run.
def preview_diff(stack: FleetStack) -> str:
    result = stack.project.run("preview", "--diff", "--color", "never", check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "__provider" not in out, "the provider's settings show in the preview"
    assert API_KEY not in out, "the API key shows in the preview"
    assert "PRIVATE KEY" not in out, "a private key shows in the preview"
    return out


def changed(out: str) -> dict[str, str]:
    """{resource name: operation} for every resource the preview changes."""
    step = r"^\s*([+~-]+)\s*pulumi-python:dynamic/\w+:\w+: \(([\w\[\]-]+)\)\s*\n"
    ids = r"(?:\s*\[id=[^\n]+\]\n)?\s*\[urn=\S+::(\S+)\]"
    return {name: op for _, op, name in re.findall(step + ids, out, flags=re.M)}


def node_with_steps(node: str, op: str) -> dict[str, str]:
    return {node: op, "nodes": "update"}


def test_no_change_previews_nothing(fleet_stack: FleetStack) -> None:
    out = preview_diff(fleet_stack)
    assert changed(out) == {}, out
    assert "to create" not in out, out
    assert "to replace" not in out, out
    assert "to update" not in out, out


def test_instance_type_change_replaces_the_nodes_and_their_steps(fleet_stack: FleetStack) -> None:
    config = base_config()
    config["nodeGroups"][0]["placements"] = [A100]
    fleet_stack.configure(config)
    out = preview_diff(fleet_stack)
    assert changed(out) == {
        **node_with_steps("node-0", "replace"),
        **node_with_steps("node-1", "replace"),
        "training": "update",
    }, out
    assert len(re.findall(r'~ instance_type: "gpu_1x_a10" => "gpu_1x_a100_sxm4"', out)) == 2, out
    assert "+-2 to replace" in out


def test_node_count_change_adds_a_node_and_restarts_training(fleet_stack: FleetStack) -> None:
    config = base_config()
    config["nodeGroups"][0]["count"] = 3
    config["training"]["runName"] = "three"  # nodes added to a finished run are refused: a new run uses them
    fleet_stack.configure(config)
    out = preview_diff(fleet_stack)
    assert changed(out) == {**node_with_steps("node-2", "create"), "training": "update"}, out
    assert re.search(r"~ world_size\s*: 2 => 3", out), out
    assert "+ 1 to create" in out


def test_region_change_replaces_the_filesystem_and_every_node(fleet_stack: FleetStack) -> None:
    config = base_config()
    config["nodeGroups"][0]["placements"] = [{"instanceType": "gpu_1x_a10", "region": "us-west-1"}]
    # Filesystem names are unique per account and the old one is retained: the new region gets a new name.
    config["filesystem"] = {"name": "sae-gitops-west", "region": "us-west-1"}
    fleet_stack.configure(config)
    out = preview_diff(fleet_stack)
    assert changed(out) == {
        "filesystem": "replace[retain]",
        **node_with_steps("node-0", "replace"),
        **node_with_steps("node-1", "replace"),
        "training": "update",
    }, out
    moves = re.findall(r'~ region\s*: "us-east-3" => "us-west-1"', out)
    assert len(moves) == 4, "the filesystem, both nodes' placements and the `filesystem` stack output"


def test_region_move_under_the_same_filesystem_name_fails_at_preview_with_the_fix(fleet_stack: FleetStack) -> None:
    config = base_config()
    config["nodeGroups"][0]["placements"] = [{"instanceType": "gpu_1x_a10", "region": "us-west-1"}]
    config["filesystem"] = {**config["filesystem"], "region": "us-west-1"}
    fleet_stack.configure(config)
    result = fleet_stack.project.run("preview", "--diff", "--color", "never", check=False)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert re.search(
        r"filesystem 'sae-gitops' is kept when replaced .* new name \(e\.g\. 'sae-gitops-us-west-1'\)",
        out.replace("\n", " "),
    ), out


def test_adding_a_firewall_creates_the_ruleset_and_relaunches_the_nodes(fleet_stack: FleetStack) -> None:
    config = base_config()
    config["firewall"] = {
        "rules": [
            {"protocol": "tcp", "portRange": [22, 22], "sourceNetwork": "203.0.113.7", "description": "ssh from ci"}
        ]
    }
    fleet_stack.configure(config)
    out = preview_diff(fleet_stack)
    # Lambda attaches rulesets only at launch: the nodes (and what runs on them) are replaced.
    assert changed(out) == {
        "firewall": "create",
        **node_with_steps("node-0", "replace"),
        **node_with_steps("node-1", "replace"),
        "training": "update",
    }, out
    assert '"203.0.113.7/32"' in out, "the rule as the API will store it"


def test_training_config_change_updates_the_launch_in_place(fleet_stack: FleetStack) -> None:
    config = base_config()
    config["training"]["overrides"]["total_vectors"] = 40960
    fleet_stack.configure(config)
    out = preview_diff(fleet_stack)
    assert changed(out) == {"training": "update"}, out
    assert "~ 1 to update" in out


def test_training_config_change_shows_the_trainer_key(fleet_stack: FleetStack) -> None:
    config = base_config()
    config["training"]["overrides"]["total_vectors"] = 40960
    fleet_stack.configure(config)
    out = preview_diff(fleet_stack)
    assert re.search(r"total_vectors\s*: 20480 => 40960", out), out

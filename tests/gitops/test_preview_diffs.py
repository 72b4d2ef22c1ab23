"""`pulumi preview --diff` for the four everyday changes: the right resources replaced or updated, nothing else,
no `__provider` noise, no secret in clear. Built on the small stack in conftest (SshKey, Filesystem, Instances),
not yet on the fleet component (see docs/gitops.md)."""

from __future__ import annotations

import json
import re

from tests.gitops.conftest import TWO_A10, USER_DATA_SECRET, FleetStack


def preview_diff(stack: FleetStack) -> str:
    out = stack.project.run("preview", "--diff", "--color", "never").stdout
    assert "__provider" not in out and USER_DATA_SECRET not in out
    return out


def changed(out: str) -> dict[str, str]:
    """{resource name: operation} for every resource the preview changes."""
    step = r"^\s*([+~-]+)\s*pulumi-python:dynamic/lambda:\w+: \((\w+)\)\s*\n"
    ids = r"(?:\s*\[id=\S+\]\n)?\s*\[urn=\S+::(\S+)\]"
    ops = re.findall(step + ids, out, flags=re.M)
    return {name: op for _, op, name in ops}


def test_the_four_changes_preview_clearly(fleet_stack: FleetStack) -> None:
    fleet_stack.project.run("up", "--yes")
    assert changed(preview_diff(fleet_stack)) == {}

    fleet_stack.set_nodes([TWO_A10[0], {**TWO_A10[1], "type": "gpu_1x_a100_sxm4"}])
    out = preview_diff(fleet_stack)
    assert changed(out) == {"node-1": "replace"}, out
    assert re.search(r'instance_type: "gpu_1x_a10" => "gpu_1x_a100_sxm4"', out), out
    assert "1 to replace" in out

    fleet_stack.set_nodes([*TWO_A10, {**TWO_A10[1], "name": "node-2"}])
    out = preview_diff(fleet_stack)
    assert changed(out) == {"node-2": "create"}
    assert "+ 1 to create" in out and "user_data           : [secret]" in out

    fleet_stack.set_nodes([TWO_A10[0], {**TWO_A10[1], "region": "us-west-1"}])
    out = preview_diff(fleet_stack)
    assert changed(out) == {"node-1": "replace"}
    assert re.search(r'region\s*: "us-east-1" => "us-west-1"', out), out

    fleet_stack.set_nodes(TWO_A10)
    fleet_stack.set_config("lambda-sae:training", "tiny-cpu-v2")
    out = preview_diff(fleet_stack)
    assert changed(out) == {"node-0": "replace", "node-1": "replace"}
    assert re.search(r'training: "tiny-cpu" => "tiny-cpu-v2"', out), out
    assert json.loads(fleet_stack.project.run("stack", "output", "--json").stdout)["hourly_cost_usd"] == 2.58

"""What an update of `FleetNodes` does on each node, from its inputs and the node's recorded status: nothing, the
setup only (same instance, pinned host key), or everything (a new instance: boot, ready gate with a new host key)."""

from __future__ import annotations

from typing import Any

from lambda_provider.fleet.fleet_nodes import FleetNodesProvider, node_plan, ready_fingerprint, setup_fingerprint

SPEC = {"instance_id": "i-1", "expect": {"EXPECT_GPUS": 1}, "setup_environment": {"FLEET_ALLOW_CPU": 1}}


def props(**spec: Any) -> dict[str, Any]:
    return {
        "nodes": {"node-0": {**SPEC, **spec}},
        "ssh": {"user": "ubuntu"},
        "fs_mount": "/lambda/nfs/fs",
        "setup": {"script": "setup", "upload": {"digest": "d1"}},
        "ready_timeout_seconds": 60,
    }


def done(p: dict[str, Any], **record: Any) -> dict[str, Any]:
    """The node's status after a successful update with inputs `p`."""
    spec = p["nodes"]["node-0"]
    return {
        "instance_id": spec["instance_id"],
        "host_key": "ssh-ed25519 AAAA",
        "ok": True,
        "ready_applied": ready_fingerprint(p, spec),
        "setup_applied": setup_fingerprint(p, spec),
        **record,
    }


def test_a_node_that_is_set_up_is_left_alone() -> None:
    assert node_plan(props(), "node-0", done(props())) == "none"


def test_a_new_instance_gets_every_step() -> None:
    assert node_plan(props(instance_id="i-2"), "node-0", done(props())) == "all"


def test_a_node_never_brought_up_gets_every_step() -> None:
    assert node_plan(props(), "node-0", None) == "all"


def test_a_node_without_a_pinned_host_key_gets_its_ready_gate_again() -> None:
    assert node_plan(props(), "node-0", done(props(), host_key=None)) == "all"


def test_a_changed_upload_reruns_only_the_setup() -> None:
    changed = props()
    changed["setup"] = {"script": "setup", "upload": {"digest": "d2"}}
    assert node_plan(changed, "node-0", done(props())) == "setup"


def test_a_failed_setup_runs_again_on_the_same_instance() -> None:
    assert node_plan(props(), "node-0", done(props(), ok=False)) == "setup"


def test_diff_is_empty_when_every_node_is_set_up() -> None:
    p = props()
    olds = {**p, "status": {"node-0": done(p)}, "ok": True}
    assert FleetNodesProvider().diff("fleet-nodes", olds, p).changes is False


def test_diff_changes_when_a_node_is_added() -> None:
    p = props()
    olds = {**p, "status": {"node-0": done(p)}, "ok": True}
    news = {**p, "nodes": {**p["nodes"], "node-1": {**SPEC, "instance_id": "i-9"}}}
    assert FleetNodesProvider().diff("fleet-nodes", olds, news).changes is True


def test_diff_changes_after_a_failed_update() -> None:
    p = props()
    olds = {**p, "status": {"node-0": done(p, ok=False)}, "ok": False}
    assert FleetNodesProvider().diff("fleet-nodes", olds, p).changes is True

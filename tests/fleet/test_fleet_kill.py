"""`pulumi up` of an 8-node fleet SIGKILLed while the nodes boot: the next `up` carries on with all eight instances
(tracked, or adopted by their ownership tags where the killed engine had not written one down yet) and launches none
twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Any

import pytest

from lambda_provider.emulator.testing import wait_for
from tests.fleet.fleet_support import A10, Fleet, assert_clean_up, fleet_on_emulator, stack_config
from tests.pulumi_support import kill_processes_in, require_pulumi

NODES = 8
# Room for a second launch of every node: a double launch must show as one, not as a capacity error.
EMULATOR = {"quotas": {"instances_per_account": 32}, "instance_types": {"gpu_1x_a10": {"capacity": {"us-east-1": 32}}}}


@pytest.fixture
def fleet(tmp_path: Any) -> Any:
    with fleet_on_emulator(tmp_path, filesystem="sae-kill", emulator_config=EMULATOR) as fleet:
        yield fleet
        kill_processes_in(fleet.project.root)  # before the destroy: provider hosts a SIGKILLed CLI left behind


def launches(fleet: Fleet) -> dict[str, list[str]]:
    """Every instance ever launched, by the fleet resource it was launched for (terminated included)."""
    by_node: dict[str, list[str]] = {}
    for doc in fleet.emulator.control("GET", "/state")["instances"]:
        tags = {t["key"]: t["value"] for t in doc.get("tags") or []}
        resource = tags.get("pulumi-resource", "")
        by_node.setdefault(resource.rsplit("/", 1)[-1], []).append(doc["id"])
    return by_node


def tracked_instances(fleet: Fleet) -> dict[str, str]:
    deployment = json.loads(fleet.project.run("stack", "export").stdout)["deployment"]
    return {
        r["urn"].rsplit("::", 1)[1]: r["id"]
        for r in deployment.get("resources") or []
        if r.get("type") == "pulumi-python:dynamic/lambda:Instance"
    }


def test_up_killed_while_eight_nodes_boot_then_up_adopts_all_eight(fleet: Fleet) -> None:
    config = stack_config([A10], count=NODES, filesystem="sae-kill", run_name="kill", waitMinutes=0)
    config["budget"] = {"maxUsdPerHour": 20, "maxHours": 1}  # eight A10s: $10.32/h
    fleet.configure(config)
    fleet.emulator.hang_new_boots("ip")  # every launch happens, no boot ends: `up` is mid-boot for all eight
    project = fleet.project
    cmd = [require_pulumi(), "up", "--yes", "--skip-preview", "--stack", project.stack, "--non-interactive"]
    up = subprocess.Popen(
        cmd,
        cwd=project.root,
        env={**os.environ, **project.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        booting = wait_for(
            lambda: len(fleet.live_instances()) == NODES or up.poll() is not None, timeout=240, message="eight launches"
        )
        assert booting, "no eight launches"
        assert up.poll() is None, "up ended before its eight launches"
    finally:
        os.killpg(up.pid, signal.SIGKILL)
        killed_output = up.communicate()[0]
        kill_processes_in(project.root)
    assert up.returncode == -signal.SIGKILL, killed_output[-3000:]
    launched = {node: ids for node, ids in launches(fleet).items() if node.startswith("node-")}
    assert sorted(launched) == [f"node-{i}" for i in range(NODES)], launched

    fleet.emulator.hang_new_boots(None)
    for ids in launched.values():
        fleet.emulator.hang_boot(ids[0], None)
    project.run("cancel", "--yes")  # the killed run still holds the file backend's lock
    assert_clean_up(fleet.up())

    after = {node: ids for node, ids in launches(fleet).items() if node.startswith("node-")}
    assert after == launched, "every node kept its one instance: none launched twice"
    assert tracked_instances(fleet) == {node: ids[0] for node, ids in launched.items()}
    assert {i["id"] for i in fleet.live_instances()} == {ids[0] for ids in launched.values()}
    assert len(project.outputs()["nodes"]) == NODES

"""The scheduled pipeline steps on the real fleet: the drift check fails after an out-of-band terminate and passes
once `up` repaired the fleet; the expiry sweep destroys the fleet only past its `expires_at` output, keeping the
filesystem with the checkpoints. One deployed fleet, in this order (the sweep destroys it)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from tests.gitops.conftest import FleetStack


def test_drift_check_fails_after_an_out_of_band_terminate(fleet_stack: FleetStack) -> None:
    clean = fleet_stack.step("drift_check", "--stack", "dev")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "stack dev: no drift" in clean.stdout

    victim = next(i for i in fleet_stack.live_instances() if i["name"] == "dev-node-1")
    gone = fleet_stack.emulator.api("POST", "/instance-operations/terminate", {"instance_ids": [victim["id"]]})
    assert gone.status == 200, gone.body

    drift = fleet_stack.step("drift_check", "--stack", "dev")
    assert drift.returncode == 1
    assert "::error title=Drift in stack dev::" in drift.stdout
    assert re.search(
        r"\+ pulumi-python:dynamic/lambda:Instance: \(create\)\s+\[urn=\S+Instance::node-1\]", drift.stdout
    ), drift.stdout
    assert "__provider" not in drift.stdout

    fleet_stack.project.run("refresh", "--yes")  # what the error annotation tells the on-call to run
    fleet_stack.up()
    repaired = fleet_stack.step("drift_check", "--stack", "dev")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert len(fleet_stack.live_instances()) == 2


def test_expiry_sweep_destroys_only_expired_stacks(fleet_stack: FleetStack) -> None:
    outputs = fleet_stack.outputs()
    created, expires = (datetime.fromisoformat(outputs[k]) for k in ("created_at", "expires_at"))
    assert expires - created == timedelta(hours=2), "created + budget.maxHours"

    early = (created + timedelta(hours=1)).isoformat()
    kept = fleet_stack.step("expiry_sweep", "--now", early, check=True)
    assert f"stack dev: expires {expires.isoformat()}, kept" in kept.stdout
    assert len(fleet_stack.live_instances()) == 2

    late = (expires + timedelta(minutes=1)).isoformat()
    swept = fleet_stack.step("expiry_sweep", "--now", late, check=True)
    assert f"stack dev: expired at {expires.isoformat()}: destroying" in swept.stdout
    assert fleet_stack.live_instances() == []
    filesystems = fleet_stack.emulator.api("GET", "/file-systems").body["data"]
    assert [f["name"] for f in filesystems] == ["sae-gitops"], "the retained filesystem keeps the checkpoints"
    assert fleet_stack.outputs() == {}

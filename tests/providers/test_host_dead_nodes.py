"""Instance.diff against the live status, through the SDK's provider host: unhealthy nodes are kept (with the command
that replaces them), an unreadable API falls back to the recorded state, and an update that finds its instance dead
names the node and the fix."""

from __future__ import annotations

import grpc
import pytest

from tests.providers.emulator_api import Api
from tests.providers.host_fixtures import assert_converged, key_and_node, launches_for
from tests.providers.host_harness import Engine, Registration


def _up(engine: Engine, **instance_args: object) -> tuple[dict[str, Registration], str]:
    regs = key_and_node(**{"region": "us-east-1", **instance_args})
    for reg in regs.values():
        engine.up(reg)
    return regs, engine.state[regs["node"].urn].id


def _stderr(engine: Engine) -> str:
    return "".join(engine.host.stderr_lines)


def test_unhealthy_instance_is_kept_and_the_warning_names_the_replace_command(api: Api, engine: Engine) -> None:
    regs, instance_id = _up(engine, boot_timeout_seconds=60)
    api.control("POST", f"/instances/{instance_id}/status", {"status": "unhealthy"})
    assert engine.up(regs["node"]) == "same"
    assert engine.state[regs["node"].urn].id == instance_id
    assert f"node: instance {instance_id} is unhealthy at Lambda" in _stderr(engine)
    assert "`pulumi up --replace '**lambda:Instance::node'`" in _stderr(engine)

    renamed = key_and_node(region="us-east-1", boot_timeout_seconds=60, name="node-renamed")["node"]
    assert engine.up(renamed) == "update"  # returns at once: an update does not wait out the timeout on it
    out = engine.outputs(renamed)
    assert out["ready"] is False
    assert "unhealthy at Lambda" in out["boot_error"]

    api.control("POST", f"/instances/{instance_id}/status", {"status": "active"})  # Lambda's check recovered it
    assert engine.up(renamed) == "update"
    assert engine.outputs(renamed)["ready"] is True
    assert engine.state[renamed.urn].id == instance_id
    assert len(launches_for(api, "node")) == 1


def test_unreadable_live_status_falls_back_to_the_recorded_state(api: Api, engine: Engine) -> None:
    regs, instance_id = _up(engine)
    api.client().instances.terminate([instance_id])
    api.wait_for(lambda: api.client().instances.get(instance_id).status == "terminated")
    rule = api.add_fault(action="error", method="GET", path=f"^/instances/{instance_id}$", status=503)
    assert engine.up(regs["node"], preview=True) == "same"  # today's answer, no failure
    assert api.fault(rule["id"])["fired"] == 3  # bounded: the probe's three tries, then it gives up
    assert f"could not read the live status of instance {instance_id}" in _stderr(engine)


def test_update_that_finds_the_instance_dead_names_the_node_and_the_next_up_replaces_it(
    api: Api, engine: Engine
) -> None:
    _, instance_id = _up(engine)
    api.client().instances.terminate([instance_id])
    api.wait_for(lambda: api.client().instances.get(instance_id).status == "terminated")
    renamed = key_and_node(region="us-east-1", name="node-renamed")["node"]
    api.add_fault(action="error", method="GET", path=f"^/instances/{instance_id}$", status=503, count=3)  # the diff
    with pytest.raises(grpc.RpcError) as failed:
        engine.up(renamed)  # diff could not see it dead: an in-place rename, and update finds it terminated
    assert f"node: instance {instance_id} is terminated at Lambda, so it cannot be updated" in failed.value.details()
    assert "Run `pulumi up` again: its diff sees the dead instance and launches a replacement" in failed.value.details()

    assert engine.up(renamed) == "replace"
    assert engine.state[renamed.urn].id != instance_id
    assert len(launches_for(api, "node")) == 2
    assert_converged(api, engine)

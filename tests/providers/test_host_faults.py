"""Faults while the host drives Instance: afterwards the emulator runs exactly what the state tracks, once."""

from __future__ import annotations

import threading
from collections.abc import Callable

import grpc
import pytest

from lambda_provider.client import LaunchRequest
from tests.providers.emulator_api import Api
from tests.providers.host_fixtures import assert_converged, assert_no_api_key_leak, key_and_node, launches_for
from tests.providers.host_harness import Engine, ProviderHost, Registration


def _stack(**instance_args: object) -> dict[str, Registration]:
    return key_and_node(**{"region": ["us-east-1", "us-west-1"], **instance_args})


def _up_all(engine: Engine, regs: dict[str, Registration]) -> None:
    for reg in regs.values():
        engine.up(reg)


def test_429_storm_on_every_endpoint(api: Api, engine: Engine) -> None:
    rule = api.add_fault(action="rate_limit", probability=0.3, count=40)
    regs = _stack()
    _up_all(engine, regs)
    assert engine.outputs(regs["node"])["ready"] is True
    engine.destroy()
    assert api.fault(rule["id"])["fired"] > 0
    assert len(launches_for(api, "node")) == 1
    assert api.live_instances() == []


def test_5xx_storm_and_a_refused_launch(api: Api, engine: Engine) -> None:
    api.add_fault(action="error", method="GET", status=502, body="html", probability=0.3, count=40)
    api.add_fault(action="error", method="POST", path="launch", status=503, count=1)  # not forwarded: no instance
    regs = _stack()
    _up_all(engine, regs)
    assert engine.outputs(regs["node"])["ready"] is True
    assert len(launches_for(api, "node")) == 1
    assert_converged(api, engine)


def test_lost_launch_response_is_adopted_not_relaunched(api: Api, engine: Engine) -> None:
    rule = api.add_fault(action="drop_response", method="POST", path="launch", count=1)
    regs = _stack()
    _up_all(engine, regs)
    assert api.fault(rule["id"])["fired"] == 1
    assert [i["id"] for i in launches_for(api, "node")] == [engine.state[regs["node"].urn].id]
    assert_converged(api, engine)


def test_capacity_vanishing_between_probe_and_launch_fails_over(api: Api, engine: Engine) -> None:
    regs = _stack()
    engine.up(regs["key"])
    hold = api.add_fault(action="delay", method="POST", path="launch", delay_seconds=1.5, count=1)
    result: dict[str, object] = {}
    worker = threading.Thread(target=lambda: result.setdefault("step", engine.up(regs["node"])))
    worker.start()
    api.wait_for(lambda: api.fault(hold["id"])["fired"] == 1)  # the launch for us-east-1 is in flight
    api.set_capacity("gpu_1x_a10", "us-east-1", 0)
    worker.join(timeout=60)
    assert result.get("step") == "create"
    assert engine.outputs(regs["node"])["region"] == "us-west-1"
    assert len(launches_for(api, "node")) == 1
    assert_converged(api, engine)


def test_boot_timeout_keeps_the_instance_tracked_and_the_next_up_waits_again(api: Api, engine: Engine) -> None:
    api.control("PUT", "/boot", {"hang": "no-ip"})
    regs = _stack(boot_timeout_seconds=0.5)
    _up_all(engine, regs)
    out = engine.outputs(regs["node"])
    assert out["ready"] is False
    assert "after 0s" in out["boot_error"]
    assert out["status"] == "booting"
    assert_converged(api, engine)  # tracked: destroy would terminate it; nothing bills outside the stack

    instance_id = engine.state[regs["node"].urn].id
    api.control("PUT", "/boot", {"hang": None})
    api.control("POST", f"/instances/{instance_id}/boot", {"hang": None})
    assert engine.up(_stack(boot_timeout_seconds=30)["node"]) == "update"
    out = engine.outputs(regs["node"])
    assert out["ready"] is True
    assert out["ip"]
    assert out.get("boot_error") is None
    assert [i["id"] for i in launches_for(api, "node")] == [instance_id]


def _engine_killed_during_create(api: Api, regs: dict[str, Registration]) -> Engine:
    """Create the key, then the node in the background; SIGKILL the host once the launch happened (as a killed
    `pulumi up`). Returns the engine with the state it had then; its host is gone."""
    with ProviderHost() as host:
        host.configure(api.stack_config())
        engine = Engine(host)
        engine.up(regs["key"])
        _kill_host_during_create(api, engine, regs["node"])
    return engine


def _kill_host_during_create(api: Api, engine: Engine, node: Registration) -> None:
    errors: list[BaseException] = []

    def create() -> None:
        try:
            engine.up(node)
        except grpc.RpcError as exc:
            errors.append(exc)

    api.control("PUT", "/boot", {"hang": "ip"})  # the launch happens, the boot does not end: mid-create
    worker = threading.Thread(target=create)
    worker.start()
    api.wait_for(lambda: len(launches_for(api, "node")) == 1)
    engine.host.kill()
    worker.join(timeout=30)
    assert errors
    assert node.urn not in engine.state  # the engine never learnt the id
    api.control("PUT", "/boot", {"hang": None})
    api.control("POST", f"/instances/{launches_for(api, 'node')[0]['id']}/boot", {"hang": None})


def _restart(api: Api, engine: Engine, body: Callable[[Engine], None]) -> None:
    with ProviderHost() as host:
        host.configure(api.stack_config())
        engine.host = host
        body(engine)
        assert_no_api_key_leak(api, engine)


def test_killed_during_launch_then_up_again_adopts(api: Api) -> None:
    regs = _stack()
    engine = _engine_killed_during_create(api, regs)

    def second_up(engine: Engine) -> None:
        assert engine.up(regs["key"]) == "same"
        assert engine.up(regs["node"]) == "create"
        assert engine.outputs(regs["node"])["ready"] is True

    _restart(api, engine, second_up)
    assert [i["id"] for i in launches_for(api, "node")] == [engine.state[regs["node"].urn].id]
    assert_converged(api, engine)


def test_killed_during_launch_then_spec_changed_terminates_the_stray(api: Api) -> None:
    regs = _stack()
    engine = _engine_killed_during_create(api, regs)
    stray = launches_for(api, "node")[0]["id"]
    changed = _stack(user_data="#cloud-config\nruncmd: [echo changed]\n")

    _restart(api, engine, lambda e: e.up(changed["node"]))
    assert engine.state[changed["node"].urn].id != stray
    assert api.client().instances.get(stray).status in ("terminating", "terminated")
    assert_converged(api, engine)


@pytest.mark.parametrize("status", ["preempted", "terminated"])
def test_read_drops_instances_that_died_outside_pulumi(api: Api, engine: Engine, status: str) -> None:
    regs = _stack()
    _up_all(engine, regs)
    instance_id = engine.state[regs["node"].urn].id
    if status == "preempted":
        api.control("POST", f"/instances/{instance_id}/status", {"status": "preempted"})
    else:
        api.client().instances.terminate([instance_id])
        api.wait_for(lambda: api.client().instances.get(instance_id).status == "terminated")
    assert engine.refresh(regs["node"].urn) == "deleted"
    assert engine.up(regs["node"]) == "create"
    assert_converged(api, engine)


def test_preempted_while_booting_fails_create_and_nothing_bills(api: Api, engine: Engine) -> None:
    api.control("PUT", "/boot", {"hang": "no-ip"})
    regs = _stack(boot_timeout_seconds=30)
    engine.up(regs["key"])
    result: list[BaseException] = []

    def create() -> None:
        try:
            engine.up(regs["node"])
        except grpc.RpcError as exc:
            result.append(exc)

    worker = threading.Thread(target=create)
    worker.start()
    api.wait_for(lambda: len(launches_for(api, "node")) == 1)
    api.control("POST", f"/instances/{launches_for(api, 'node')[0]['id']}/status", {"status": "preempted"})
    worker.join(timeout=60)
    assert result
    assert "preempted while booting" in result[0].details()
    assert_converged(api, engine)  # not tracked, and not billing either
    api.control("PUT", "/boot", {"hang": None})
    assert engine.up(regs["node"]) == "create"
    assert len(launches_for(api, "node")) == 2
    assert_converged(api, engine)


def test_refresh_terminates_an_untracked_duplicate_of_a_tracked_instance(api: Api, engine: Engine) -> None:
    regs = _stack()
    _up_all(engine, regs)
    tracked = engine.state[regs["node"].urn].id
    # A lagging duplicate: same ownership tags, launched behind the state's back (e.g. listed only after a relaunch).
    owner_tags = {t["key"]: t["value"] for t in launches_for(api, "node")[0]["tags"]}
    client = api.client()
    duplicate = client.instances.launch(LaunchRequest("us-west-1", "gpu_1x_a10", "test-key", tags=owner_tags))
    assert engine.refresh(regs["node"].urn) == "refreshed"
    assert engine.state[regs["node"].urn].id == tracked
    assert client.instances.get(duplicate).status in ("terminating", "terminated")
    assert_converged(api, engine)

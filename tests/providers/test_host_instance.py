"""Instance through the SDK's dynamic-provider host over gRPC, with the real serialised provider."""

from __future__ import annotations

import base64

import grpc
import pytest

from lambda_provider.resources import Filesystem, Instance, SshKey
from tests.providers.emulator_api import Api
from tests.providers.host_fixtures import PUBLIC_KEY, assert_converged, key_and_node, launches_for
from tests.providers.host_harness import CheckFailed, Engine, Registration, registrations


def _stack(**instance_args: object) -> dict[str, Registration]:
    return key_and_node(**{"region": "us-east-1", **instance_args})


def test_lifecycle_create_same_rename_replace_refresh_destroy(api: Api, engine: Engine) -> None:
    regs = _stack()
    key, node = regs["key"], regs["node"]
    assert node.type == "pulumi-python:dynamic/lambda:Instance"
    assert node.delete_before_replace
    assert b"lambda_provider.resources.instance" in base64.b64decode(node.inputs["__provider"])

    assert engine.up(key, preview=True) == "create"
    assert engine.up(node, preview=True) == "create"
    assert api.all_instances() == []
    assert engine.calls == ["Check", "Check"]  # preview never creates

    assert engine.up(key) == "create"
    assert engine.up(node) == "create"
    out = engine.outputs(node)
    assert out["ready"] is True
    assert out["status"] == "active"
    assert out["ip"]
    assert out["private_ip"]
    assert out["ssh_port"] not in (None, 22)  # the emulator's SSH endpoint port, read from its ssh_port field
    assert out["instance_type"] == "gpu_1x_a10"
    assert out["region"] == "us-east-1"
    assert out["gpu_count"] == 1
    assert out["gpu_description"].startswith("A10")
    assert out["price_cents_per_hour"] > 0
    assert out["architecture"] == "x86_64"
    assert out["name"] == "test-node"
    assert out["hostname"]
    first_id = engine.state[node.urn].id
    launched = launches_for(api, "node")
    assert [i["id"] for i in launched] == [first_id]
    assert {t["key"] for t in launched[0]["tags"]} >= {"pulumi-project", "pulumi-stack", "pulumi-resource"}

    engine.calls.clear()
    assert engine.up(key) == "same"
    assert engine.up(node) == "same"
    assert "Create" not in engine.calls
    assert "Update" not in engine.calls

    renamed = _stack(name="node-renamed")["node"]
    assert engine.up(renamed, preview=True) == "update"
    assert engine.up(renamed) == "update"
    assert engine.state[node.urn].id == first_id
    assert api.client().instances.get(first_id).name == "node-renamed"

    engine.calls.clear()
    bigger = _stack(name="node-renamed", instance_type="gpu_1x_a100_sxm4")["node"]
    assert engine.up(bigger) == "replace"
    assert engine.calls == ["Check", "Diff", "Check", "Delete", "Create"]  # delete first, then launch
    second_id = engine.state[node.urn].id
    assert second_id != first_id
    assert engine.outputs(node)["instance_type"] == "gpu_1x_a100_sxm4"
    assert api.client().instances.get(first_id).status == "terminated"
    assert_converged(api, engine)

    api.client().instances.terminate([second_id])  # out of band
    assert engine.refresh(node.urn) == "deleted"
    assert engine.up(bigger) == "create"
    assert_converged(api, engine)

    engine.destroy()
    assert api.live_instances() == []
    assert api.client().ssh_keys.list() == []


def test_adding_a_fallback_placement_keeps_the_running_instance(api: Api, engine: Engine) -> None:
    regs = _stack()
    engine.up(regs["key"])
    engine.up(regs["node"])
    first_id = engine.state[regs["node"].urn].id
    wider = _stack(instance_type=["gpu_1x_a10", "gpu_1x_a100_sxm4"], region=["us-east-1", "us-west-1"])["node"]
    assert engine.up(wider) == "update"
    assert engine.state[wider.urn].id == first_id
    assert len(launches_for(api, "node")) == 1


@pytest.mark.parametrize(
    ("args", "prop", "fragment"),
    [
        ({"instance_type": "gpu_9x_nope"}, "placements", "unknown instance type 'gpu_9x_nope'"),
        ({"instance_type": "gpu_1x_gh200", "region": "us-east-1"}, "placements", "does not offer gpu_1x_gh200"),
        ({"region": "mars-north-1"}, "placements", "unknown region 'mars-north-1'"),
        ({"name": "n" * 65}, "name", "at most 64"),
        ({"tags": {"Bad_Key": "x"}}, "tags", "tag key 'Bad_Key' is invalid"),
        ({"tags": {"pulumi-stack": "x"}}, "tags", "reserved prefix"),
        ({"hostname": "-bad"}, "hostname", "must match"),
        ({"image": {"name": "x"}}, "image", "family"),
    ],
)
def test_bad_input_fails_in_check_with_what_to_fix(
    api: Api, engine: Engine, args: dict, prop: str, fragment: str
) -> None:
    regs = _stack(**args)
    with pytest.raises(CheckFailed) as failed:
        engine.up(regs["node"], preview=True)
    assert any(p == prop and fragment in reason for p, reason in failed.value.failures), failed.value.failures
    assert api.all_instances() == []


def test_two_ssh_keys_fail_in_check(api: Api, engine: Engine) -> None:
    regs = registrations(lambda: [Instance("node", instance_type="gpu_1x_a10", ssh_key_name=["a", "b"])])
    with pytest.raises(CheckFailed, match="exactly one SSH key"):
        engine.up(regs["node"], preview=True)


def test_placement_fails_over_and_names_capacity_when_none(api: Api, engine: Engine) -> None:
    api.set_capacity("gpu_1x_a10", "us-east-1", 0)
    regs = _stack(region=["us-east-1", "us-west-1"])
    engine.up(regs["key"])
    engine.up(regs["node"])
    assert engine.outputs(regs["node"])["region"] == "us-west-1"

    api.set_capacity("gpu_1x_a10", "us-west-1", 0)
    other = registrations(lambda: [Instance("other", instance_type="gpu_1x_a10", ssh_key_name="test-key")])["other"]
    with pytest.raises(grpc.RpcError) as failed:
        engine.up(other)
    details = failed.value.details()
    assert "no capacity now" in details
    assert "gpu_8x_a100 in" in details  # where capacity exists now
    assert launches_for(api, "other") == []
    assert_converged(api, engine)


def test_filesystem_region_pins_placement_and_mounts_are_outputs(api: Api, engine: Engine) -> None:
    def define() -> list:
        key = SshKey("key", public_key=PUBLIC_KEY)
        fs = Filesystem("data", region="us-west-1")
        node = Instance("node", instance_type="gpu_1x_a10", ssh_key_name=key.name, file_system_names=[fs.name])
        return [key, fs, node]

    regs = registrations(define)
    for name in ("key", "data", "node"):
        assert engine.up(regs[name]) == "create"
    out = engine.outputs(regs["node"])
    assert out["region"] == "us-west-1"
    assert out["file_system_mounts"] == {"data": "/lambda/nfs/data"}

    wrong = registrations(
        lambda: [
            Instance(
                "x", instance_type="gpu_1x_a10", region="us-east-1", ssh_key_name="test-key", file_system_names=["data"]
            )
        ]
    )["x"]
    with pytest.raises(CheckFailed, match="no placement allows us-west-1"):
        engine.up(wrong, preview=True)
    engine.destroy()
    assert api.live_instances() == []
    assert api.client().filesystems.list() == []

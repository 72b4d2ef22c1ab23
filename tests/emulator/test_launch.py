"""Launch validation in the live order, capacity, quota, and concurrent launches."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .conftest import CheckedApi

LAUNCH = "/instance-operations/launch"


def _body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "region_name": "us-east-3",
        "instance_type_name": "gpu_1x_gh200",
        "ssh_key_names": ["test-key"],
    }
    body.update(overrides)
    return body


def test_validation_order_matches_live(api: CheckedApi) -> None:
    api.add_key()
    api.add_key("second")
    api.ok("POST", "/filesystems", {"name": "east1-fs", "region": "us-east-1"})
    # Exactly one SSH key is checked first, even when everything else is wrong too.
    assert api.error("POST", LAUNCH, _body(ssh_key_names=["test-key", "second"], instance_type_name="nope"))[1] == (
        "global/invalid-parameters"
    )
    assert api.error("POST", LAUNCH, _body(ssh_key_names=[]))[1] == "global/invalid-parameters"
    assert api.error("POST", LAUNCH, _body(ssh_key_names=["missing"], region_name="nowhere"))[:2] == (
        404,
        "global/object-does-not-exist",
    )
    assert api.error("POST", LAUNCH, _body(instance_type_name="gpu_8x_h200", region_name="nowhere"))[:2] == (
        404,
        "global/object-does-not-exist",
    )
    assert api.error("POST", LAUNCH, _body(region_name="us-invalid-1"))[1:] == (
        "global/invalid-parameters",
        "Region us-invalid-1 does not exist",
    )
    # A filesystem in another region: the live object-does-not-exist text, and nothing is rented (before capacity).
    api.emu.set_capacity("gpu_1x_gh200", "us-east-3", 0)
    assert api.error("POST", LAUNCH, _body(file_system_names=["east1-fs"], tags=[{"key": "BAD", "value": ""}])) == (
        400,
        "global/object-does-not-exist",
        "Filesystem with name 'east1-fs' does not exist in region 'us-east-3', or you do not have permission to "
        "access it.",
    )
    assert api.error("POST", LAUNCH, _body(tags=[{"key": "Bad Key", "value": "v"}], quantity=2))[1] == (
        "global/invalid-parameters"
    )
    assert api.error("POST", LAUNCH, _body(quantity=2))[1:] == (
        "global/invalid-parameters",
        "Requested too many instances.",
    )
    assert api.error("POST", LAUNCH, _body(quantity=1)) == (
        400,
        "instance-operations/launch/insufficient-capacity",
        "Not enough capacity to fulfill launch request.",
    )
    assert api.error("POST", LAUNCH, _body(hostname="Not_Valid"))[1] == "global/invalid-parameters"
    assert (
        api.error(
            "POST",
            LAUNCH,
            _body(image={"family": "lambda-stack-24-04"}, region_name="us-east-1", instance_type_name="gpu_1x_gh200"),
        )[1]
        == "global/invalid-parameters"
    )
    assert api.ok("GET", "/instances") == []


def test_capacity_is_consumed_and_returned(api: CheckedApi) -> None:
    api.add_key()
    api.emu.set_capacity("gpu_1x_gh200", "us-east-3", 1)
    first = api.launch(quantity=1, tags=[{"key": "owner:me", "value": "x"}], name="first")
    types = api.ok("GET", "/instance-types")
    assert types["gpu_1x_gh200"]["regions_with_capacity_available"] == []
    assert api.error("POST", LAUNCH, _body())[1] == "instance-operations/launch/insufficient-capacity"
    api.terminate(first)
    api.wait_status(first, "terminated")
    regions = api.ok("GET", "/instance-types")["gpu_1x_gh200"]["regions_with_capacity_available"]
    assert [r["name"] for r in regions] == ["us-east-3"]
    assert api.instance(first)["tags"] == [{"key": "owner:me", "value": "x"}]


def test_quota_after_capacity(api: CheckedApi, tmp_path: object) -> None:
    api.add_key()
    api.emu.set_capacity("gpu_1x_gh200", "us-east-3", 40)
    launched = [api.launch() for _ in range(16)]  # quotas.instances_per_account default
    assert api.error("POST", LAUNCH, _body()) == (400, "global/quota-exceeded", "Quota exceeded.")
    api.emu.set_capacity("gpu_1x_gh200", "us-east-3", 0)
    assert api.error("POST", LAUNCH, _body())[1] == "instance-operations/launch/insufficient-capacity"
    assert len(launched) == len(set(launched)) == 16


def test_concurrent_launches_never_oversell_capacity(api: CheckedApi) -> None:
    api.add_key()
    api.emu.set_capacity("gpu_1x_gh200", "us-east-3", 5)
    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(lambda _: api("POST", LAUNCH, _body()), range(12)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 5 + [400] * 7
    assert {r.body["error"]["code"] for r in responses if r.status == 400} == {
        "instance-operations/launch/insufficient-capacity"
    }
    assert len(api.ok("GET", "/instances")) == 5


def test_rename_only_changes_the_name(api: CheckedApi) -> None:
    api.add_key()
    instance_id = api.launch(name="before")
    renamed = api.ok("POST", f"/instances/{instance_id}", {"name": "after"})
    assert renamed["name"] == "after"
    assert api.instance(instance_id)["name"] == "after"
    assert api.error("POST", f"/instances/{instance_id}", {"name": "x" * 65})[1] == "global/invalid-parameters"
    assert api.error("POST", "/instances/ffffffffffffffffffffffffffffffff", {"name": "x"})[0] == 404

"""Contract: recorded live responses and every emulator answer validate against the OpenAPI 1.10.0 schemas."""

from __future__ import annotations

from typing import Any

import pytest

from lambda_provider.emulator.catalog import load_catalog

from .conftest import CheckedApi
from .contract import recorded as _recorded
from .contract import validate_component, validate_response

RECORDED = {
    "images_response.json": ("GET", "/api/v1/images"),
    "instance_get_response.json": ("GET", "/api/v1/instances/{id}"),
    "instance_post_response.json": ("POST", "/api/v1/instances/{id}"),
    "instance_types_response.json": ("GET", "/api/v1/instance-types"),
    "instances_response.json": ("GET", "/api/v1/instances"),
    "restart_response.json": ("POST", "/api/v1/instance-operations/restart"),
    "ssh_keys_response.json": ("GET", "/api/v1/ssh-keys"),
    "start_response.json": ("POST", "/api/v1/instance-operations/launch"),
    "stop_response.json": ("POST", "/api/v1/instance-operations/terminate"),
}


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recorded_live_responses_validate_against_the_schemas_used_for_the_emulator(name: str) -> None:
    method, path = RECORDED[name]
    assert validate_response(method, path.replace("{id}", "0920582c7ff041399e34823a0be62549"), 200, _recorded(name))


def test_recorded_2026_catalogue_is_the_default_catalogue() -> None:
    recorded = _recorded("instance_types_2026-08-20.json")  # bare map, no envelope
    catalog = load_catalog()
    for name, item in recorded.items():
        validate_component("InstanceType", item["instance_type"])
        assert catalog.instance_types[name].to_api() == item["instance_type"], name
    assert catalog.instance_types["gpu_1x_gh200"].architecture == "arm64"
    assert "us-east-3" in catalog.instance_types["gpu_1x_gh200"].capacity


def test_emulator_instance_records_have_the_recorded_shape(api: CheckedApi) -> None:
    api.add_key()
    fs = api.ok("POST", "/filesystems", {"name": "shape-fs", "region": "us-east-3"})
    record = api.wait_status(api.launch(file_system_names=["shape-fs"], name="shape"), "active")
    recorded = _recorded("restart_response.json")["data"]["restarted_instances"][0]
    # Same fields as live, plus the undeclared live `workspace_id` and our emulator-only `ssh_port`.
    assert set(record) - set(recorded) <= {"workspace_id", "ssh_port"}
    assert set(recorded) - set(record) <= {"firewall_rulesets"}
    assert record["actions"] == recorded["actions"]
    assert record["hostname"] == record["ip"]
    assert record["is_reserved"] is False
    assert record["file_system_mounts"] == [{"mount_point": "/lambda/nfs/shape-fs", "file_system_id": fs["id"]}]
    assert not any(k in record for k in ("created", "launched_at", "started_at"))  # no timestamps, as live


def test_every_endpoint_answers_within_the_contract(api: CheckedApi) -> None:
    types = api.ok("GET", "/instance-types")
    assert types["gpu_1x_gh200"]["instance_type"]["architecture"] == "arm64"
    assert {"name": "us-east-3", "description": "Washington DC, USA"} in types["gpu_1x_gh200"][
        "regions_with_capacity_available"
    ]
    assert types["gpu_1x_a100"]["regions_with_capacity_available"] == []
    regions = api.ok("GET", "/regions")
    assert len(regions) == 17
    images = api.ok("GET", "/images")
    assert {i["architecture"] for i in images if i["region"]["name"] == "us-east-3"} == {"x86_64", "arm64"}
    assert {i["architecture"] for i in images if i["region"]["name"] == "us-east-1"} == {"x86_64"}

    generated = api.ok("POST", "/ssh-keys", {"name": "generated"})
    assert generated["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert generated["public_key"].startswith("ssh-rsa ")
    assert "private_key" not in api.ok("GET", "/ssh-keys")[0]
    assert api.error("POST", "/ssh-keys", {"name": "generated"})[1] == "global/invalid-parameters"
    assert api.error("POST", "/ssh-keys", {"name": "bad", "public_key": "not a key"})[1] == "global/invalid-parameters"
    assert api.ok("DELETE", f"/ssh-keys/{generated['id']}") == {}
    assert api.ok("GET", "/ssh-keys") == []

    fs = api.ok("POST", "/filesystems", {"name": "data", "region": "us-east-3"})
    assert fs["mount_point"] == "/lambda/nfs/data"
    assert fs["is_in_use"] is False
    assert api.error("POST", "/filesystems", {"name": "data", "region": "us-east-3"})[1] == "global/duplicate"
    assert api.error("POST", "/filesystems", {"name": "9bad", "region": "us-east-3"})[1] == "global/invalid-parameters"
    assert [f["id"] for f in api.ok("GET", "/file-systems")] == [fs["id"]]
    assert api.ok("DELETE", f"/filesystems/{fs['id']}") == {"deleted_ids": [fs["id"]]}
    assert api.error("DELETE", f"/filesystems/{fs['id']}")[:2] == (404, "global/object-does-not-exist")

    rules = api.ok("GET", "/firewall-rules")
    assert {
        "protocol": "tcp",
        "port_range": [22, 22],
        "source_network": "0.0.0.0/0",
        "description": "Allow SSH from anywhere",
    } in rules
    new_rules = [{"protocol": "tcp", "port_range": [8080, 8081], "source_network": "10.0.0.1", "description": "x"}]
    assert api.ok("PUT", "/firewall-rules", {"data": new_rules})[0]["source_network"] == "10.0.0.1/32"
    assert api.ok("GET", "/firewall-rulesets/global")["rules"][0]["port_range"] == [8080, 8081]
    icmp_with_ports = [{"protocol": "icmp", "port_range": [1, 2], "source_network": "0.0.0.0/0", "description": ""}]
    assert api.error("PUT", "/firewall-rules", {"data": icmp_with_ports})[1] == "global/invalid-parameters"
    api.ok("PATCH", "/firewall-rulesets/global", {"rules": []})
    ruleset = api.ok("POST", "/firewall-rulesets", {"name": "rs", "region": "us-east-3", "rules": new_rules})
    assert api.ok("GET", f"/firewall-rulesets/{ruleset['id']}")["instance_ids"] == []
    assert api.ok("PATCH", f"/firewall-rulesets/{ruleset['id']}", {"name": "rs2"})["name"] == "rs2"
    assert [r["id"] for r in api.ok("GET", "/firewall-rulesets")] == [ruleset["id"]]
    assert api.ok("DELETE", f"/firewall-rulesets/{ruleset['id']}") == {}
    assert api.error("GET", f"/firewall-rulesets/{ruleset['id']}")[:2] == (404, "global/object-does-not-exist")

    assert api("GET", "/audit-events").body == {"data": [], "page_token": None}
    assert api.error("GET", "/instances/0123456789abcdef0123456789abcdef")[:3] == (
        404,
        "global/object-does-not-exist",
        "Specified instance does not exist.",
    )
    assert api.error("GET", "/instance-types", api_key="wrong")[:2] == (401, "global/invalid-api-key")
    assert len(api.validated) >= 25


def test_filesystems_path_quirk_405_on_post_to_the_list_path(api: CheckedApi) -> None:
    response = api("POST", "/file-systems", {"name": "x", "region": "us-east-3"})
    assert response.status == 405
    assert response.headers["Allow"] == "GET"
    assert api.emu.api("GET", "/filesystems").status == 405  # the list lives only at /file-systems


def test_unknown_route_is_global_not_found(emulator: Any) -> None:
    response = emulator.api("GET", "/clusters")
    assert response.status == 404
    assert response.body["error"]["code"] == "global/not-found"


@pytest.mark.parametrize("scheme", ["bearer", "basic", "basic-raw", "missing", "wrong"])
def test_auth_schemes(api: CheckedApi, scheme: str) -> None:
    import base64

    key = api.emu.api_key
    header = {
        "bearer": f"Bearer {key}",
        "basic": "Basic " + base64.b64encode(f"{key}:".encode()).decode(),
        "basic-raw": f"Basic {key}",
        "missing": "",
        "wrong": "Bearer secret_nope",
    }[scheme]
    response = api("GET", "/ssh-keys", auth=header)
    if scheme in ("missing", "wrong"):
        assert response.status == 401
        assert response.body["error"] == {
            "code": "global/invalid-api-key",
            "message": "API key was invalid, expired, or deleted.",
            "suggestion": "Check your API key or create a new one, then try again.",
        }
    else:
        assert response.status == 200
        assert response.body == {"data": []}


def test_accounts_are_isolated(api: CheckedApi) -> None:
    api.add_key("mine")
    other_key = api.emu.add_account()
    assert api.ok("GET", "/ssh-keys", api_key=other_key) == []
    assert len(api.ok("GET", "/ssh-keys")) == 1
    assert api.ok("GET", "/ssh-keys", api_key=other_key) == []

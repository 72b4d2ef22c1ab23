"""Request validation: pydantic models with the live API's texts (`<field.path>: <pydantic message>`), and launch's
fields checked one at a time in the live order. No emulator: these call the validation module directly."""

from __future__ import annotations

from typing import Any

import pytest

from lambda_provider.emulator import validation
from lambda_provider.emulator.errors import ApiError
from lambda_provider.emulator.schemas import (
    AddSSHKeyRequest,
    FilesystemCreateRequest,
    FirewallRulesPutRequest,
    InstanceIdsRequest,
    LaunchRequest,
)


def _refusal(model: type, body: Any) -> ApiError:
    with pytest.raises(ApiError) as refused:
        validation.parse(model, body)
    return refused.value


def test_a_missing_field_says_field_required() -> None:
    assert _refusal(AddSSHKeyRequest, {}).message == "name: Field required"


def test_a_missing_field_suggests_adding_it() -> None:
    assert _refusal(AddSSHKeyRequest, {}).suggestion == "Add `name` to the request body."


def test_errors_are_invalid_parameters_400() -> None:
    refusal = _refusal(AddSSHKeyRequest, {})
    assert refusal.status == 400
    assert refusal.code == "global/invalid-parameters"


def test_a_wrong_type_has_pydantics_text() -> None:
    assert _refusal(AddSSHKeyRequest, {"name": 5}).message == "name: Input should be a valid string"


def test_a_pattern_has_pydantics_text() -> None:
    refusal = _refusal(FilesystemCreateRequest, {"name": "9bad", "region": "us-east-3"})
    assert refusal.message == "name: String should match pattern '^[a-zA-Z]+[0-9a-zA-Z-]*$'"


def test_a_nested_location_is_dotted() -> None:
    rule = {"protocol": "ftp", "port_range": [1, 2], "source_network": "0.0.0.0/0", "description": ""}
    assert _refusal(FirewallRulesPutRequest, {"data": [rule]}).message.startswith("data.0.protocol: Input should be")


def test_an_empty_id_list_is_refused() -> None:
    assert _refusal(InstanceIdsRequest, {"instance_ids": []}).message.startswith(
        "instance_ids: List should have at least 1 item"
    )


def test_a_body_that_is_not_an_object_is_refused() -> None:
    assert _refusal(AddSSHKeyRequest, [1]).message == "Request body must be a JSON object."


def test_a_single_host_source_network_becomes_a_32_network() -> None:
    rule = {"protocol": "tcp", "port_range": [22, 22], "source_network": "10.0.0.1", "description": "x"}
    assert validation.parse(FirewallRulesPutRequest, {"data": [rule]}).data[0].source_network == "10.0.0.1/32"


def test_icmp_with_ports_is_refused() -> None:
    rule = {"protocol": "icmp", "port_range": [1, 2], "source_network": "0.0.0.0/0", "description": ""}
    assert "port_range is not allowed for protocol icmp" in _refusal(FirewallRulesPutRequest, {"data": [rule]}).message


def _launch(**fields: Any) -> validation.Staged:
    return validation.Staged(
        LaunchRequest, {"region_name": "r", "instance_type_name": "t", "ssh_key_names": ["k"], **fields}
    )


def test_a_staged_field_is_only_checked_when_asked_for() -> None:
    staged = _launch(tags=[{"key": "BAD", "value": ""}])
    assert staged["region_name"] == "r"


def test_a_staged_tag_key_has_the_live_text() -> None:
    with pytest.raises(ApiError) as refused:
        _launch(tags=[{"key": "BAD", "value": ""}])["tags"]
    assert refused.value.message == "tags.0.key: String should match pattern '^[a-z][a-z0-9-:]+$'"


def test_quantity_below_one_has_pydantics_text() -> None:
    with pytest.raises(ApiError) as refused:
        _launch(quantity=0)["quantity"]
    assert refused.value.message == "quantity: Input should be greater than or equal to 1"


def test_an_absent_optional_field_is_its_default() -> None:
    assert _launch()["file_system_names"] == []


def test_an_absent_required_field_says_field_required() -> None:
    with pytest.raises(ApiError) as refused:
        validation.Staged(LaunchRequest, {})["region_name"]
    assert refused.value.message == "region_name: Field required"


def test_an_image_needs_an_id_or_a_family() -> None:
    with pytest.raises(ApiError) as refused:
        _launch(image={})["image"]
    assert "image must be an object with `id` or `family`" in refused.value.message

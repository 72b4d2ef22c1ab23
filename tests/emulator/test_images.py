"""GET /images is the recorded live list (all families, versions and live ids), and launch takes its families and
ids: the image catalogue that SDK, SkyPilot and dstack clients saw as 4 invented families before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lambda_provider.emulator.catalog import load_catalog
from lambda_provider.emulator.testing import running_emulator

from .conftest import CheckedApi
from .contract import recorded

LAUNCH = "/instance-operations/launch"
LIVE_FAMILIES = {
    "lambda-stack-22-04",
    "lambda-stack-24-04",
    "lambda-stack-legacy-22-04",
    "gpu-base-22-04",
    "gpu-base-24-04",
    "ubuntu-22-04",
    "ubuntu-24-04",
}


def _live() -> list[dict[str, Any]]:
    return recorded("images_response.json")["data"]


def _key(image: dict[str, Any]) -> tuple[str, str]:
    return image["id"], image["region"]["name"]


def test_only_recorded_images_when_the_extras_are_dropped(tmp_path: Path) -> None:
    with running_emulator(tmp_path / "emu", config={"images_extra": []}) as emu:
        served = emu.api("GET", "/images").body["data"]
    assert served == _live()


def test_the_default_list_is_the_recorded_one_plus_the_x86_builds_in_us_east_3(api: CheckedApi) -> None:
    served = api.ok("GET", "/images")
    assert served[: len(_live())] == _live()
    extras = served[len(_live()) :]
    assert {i["region"]["name"] for i in extras} == {"us-east-3"}
    assert {i["architecture"] for i in extras} == {"x86_64"}
    live_ids = {i["id"] for i in _live()}
    assert {i["id"] for i in extras} <= live_ids  # copies of live builds, no invented ids


def test_every_live_family_is_listed(api: CheckedApi) -> None:
    assert {i["family"] for i in api.ok("GET", "/images")} == LIVE_FAMILIES


def test_several_versions_of_a_family_are_listed(api: CheckedApi) -> None:
    versions = {i["version"] for i in api.ok("GET", "/images") if i["family"] == "lambda-stack-22-04"}
    assert versions == {"22.4.5-1026", "22.4.5-1459"}


def _launch_body(**extra: Any) -> dict[str, Any]:
    return {"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10", "ssh_key_names": ["test-key"], **extra}


def _image_of(api: CheckedApi, instance_id: str) -> dict[str, str]:
    return api.emu.instance_paths(instance_id)["instance"]["image"]


def test_launch_with_a_live_family(api: CheckedApi) -> None:
    api.add_key()
    instance_id = api.ok("POST", LAUNCH, _launch_body(image={"family": "ubuntu-22-04"}))["instance_ids"][0]
    assert _image_of(api, instance_id) == {"family": "ubuntu-22-04", "id": "46b7dad7-8b02-4cea-8c12-8ede60b39698"}


def test_launch_with_a_live_image_id(api: CheckedApi) -> None:
    api.add_key()
    live = next(i for i in _live() if i["family"] == "gpu-base-24-04" and i["region"]["name"] == "us-east-1")
    instance_id = api.ok("POST", LAUNCH, _launch_body(image={"id": live["id"]}))["instance_ids"][0]
    assert _image_of(api, instance_id) == {"family": "gpu-base-24-04", "id": live["id"]}


def test_a_live_id_of_another_region_is_refused(api: CheckedApi) -> None:
    api.add_key()
    us_south_2_only = "15c1034f-5e2e-4b7a-9ebd-8c8847440e1c"  # lambda-stack-legacy-22-04 22.4.5-1722
    status, code, message = api.error("POST", LAUNCH, _launch_body(image={"id": us_south_2_only}))
    assert status == 400
    assert code == "global/object-does-not-exist"
    assert "us-east-1" in message


def test_the_default_image_is_the_newest_lambda_stack_of_the_architecture(api: CheckedApi) -> None:
    api.add_key()
    body = {"region_name": "us-east-3", "instance_type_name": "gpu_1x_gh200", "ssh_key_names": ["test-key"]}
    instance_id = api.ok("POST", LAUNCH, body)["instance_ids"][0]
    arm64 = next(
        i for i in _live() if i["family"] == "lambda-stack-24-04" and i["architecture"] == "arm64"
    )  # the only arm64 24.04 build, in us-east-3
    assert _image_of(api, instance_id) == {"family": "lambda-stack-24-04", "id": arm64["id"]}


def test_a_family_picks_its_newest_version(api: CheckedApi) -> None:
    api.add_key()
    body = {
        "region_name": "us-east-3",
        "instance_type_name": "gpu_1x_gh200",
        "ssh_key_names": ["test-key"],
        "image": {"family": "lambda-stack-22-04"},
    }
    instance_id = api.ok("POST", LAUNCH, body)["instance_ids"][0]
    newest = next(
        i
        for i in _live()
        if i["family"] == "lambda-stack-22-04" and i["region"]["name"] == "us-east-3" and i["version"] == "22.4.5-1459"
    )
    assert _image_of(api, instance_id)["id"] == newest["id"]


def test_an_old_images_list_in_a_config_is_refused_naming_the_keys(tmp_path: Path) -> None:
    config = tmp_path / "old.yaml"
    config.write_text("images:\n  - {family: x, name: X, version: '1', architecture: x86_64, description: d}\n")
    with pytest.raises(ValueError) as refused:
        load_catalog(config)
    assert "images_extra" in str(refused.value)
    assert "images_file" in str(refused.value)

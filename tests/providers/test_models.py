"""Lenient decoding of recorded live/spec responses (../shared/lambda-cloud/recorded) and of error bodies."""

from __future__ import annotations

import json

import pytest

from lambda_provider.client import errors
from lambda_provider.client.models import Image, Instance, InstanceTypeAvailability, SshKey
from lambda_provider.client.retry import is_transient
from tests.emulator.contract import recorded  # skips without ../shared/, fails under CI=true


def _data(name: str):
    return recorded(name)["data"]


def test_instance_record_decodes_with_unknown_fields_kept():
    raw = _data("restart_response.json")["restarted_instances"][0]
    inst = Instance.from_api(raw)
    assert inst.id == "0920582c7ff041399e34823a0be62549"
    assert inst.status == "active"
    assert inst.is_ready
    assert inst.instance_type.name == "gpu_8x_a100"
    assert inst.instance_type.specs.gpus == 8
    assert inst.region.name == "us-west-1"
    assert inst.ssh_port == 22  # no emulator field: real SSH port
    assert inst.file_system_mounts[0].mount_point == "/lambda/nfs/my-filesystem"
    assert inst.extra["is_reserved"] is False  # undeclared in the spec, kept rather than rejected


def test_booting_instance_without_optional_fields():
    inst = Instance.from_api({"id": "abc", "status": "booting"})
    assert inst.ip is None
    assert inst.tags == {}
    assert not inst.is_ready
    assert inst.file_system_mounts == ()
    assert Instance.from_api({"id": "x", "status": "active", "ip": "10.0.0.1", "ssh_port": 2222}).ssh_port == 2222


def test_instance_tags_decode_to_a_mapping():
    inst = Instance.from_api({"id": "a", "status": "booting", "tags": [{"key": "pulumi-stack", "value": "dev"}]})
    assert inst.has_tags({"pulumi-stack": "dev"})
    assert not inst.has_tags({"pulumi-stack": "prod"})


def test_instance_types_both_recordings_decode():
    live = {k: InstanceTypeAvailability.from_api(k, v) for k, v in recorded("instance_types_2026-08-20.json").items()}
    assert live["gpu_1x_a10"].instance_type.architecture == "x86_64"
    assert live["gpu_1x_a10"].regions_with_capacity == ()  # the trimmed recording has no capacity key
    older = {k: InstanceTypeAvailability.from_api(k, v) for k, v in _data("instance_types_response.json").items()}
    assert older["gpu_1x_gh200"].regions_with_capacity == ()
    assert older["gpu_8x_b200_sxm6"].has_capacity_in("us-east-1")
    assert older["gpu_8x_b200_sxm6"].instance_type.architecture == "x86_64"  # absent -> default


def test_ssh_keys_and_images_decode():
    keys = [SshKey.from_api(k) for k in _data("ssh_keys_response.json")]
    assert [k.name for k in keys] == ["yubikey", "another-name"]
    images = [Image.from_api(i) for i in _data("images_response.json")]
    assert all(i.region is not None for i in images)
    assert {i.architecture for i in images} >= {"x86_64"}


def test_record_without_id_is_a_clear_error():
    with pytest.raises(ValueError, match="'id' missing"):
        Instance.from_api({"status": "active"})


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (
            400,
            {"error": {"code": "instance-operations/launch/insufficient-capacity", "message": "m"}},
            errors.InsufficientCapacity,
        ),
        (400, {"error": {"code": "global/quota-exceeded", "message": "m", "suggestion": "s"}}, errors.QuotaExceeded),
        (404, {"error": {"code": "global/object-does-not-exist", "message": "m"}}, errors.NotFound),
        (404, {"error": {"code": "global/not-found", "message": "m"}}, errors.NotFound),
        (400, {"error": {"code": "filesystems/filesystem-in-use", "message": "m"}}, errors.FilesystemInUse),
        (400, {"error": {"code": "", "message": "Key is currently in use, cannot delete"}}, errors.InUse),
        (
            400,
            {"error": {"code": "global/invalid-parameters", "message": "Key is currently in use, cannot delete"}},
            errors.InUse,
        ),
        (401, {"error": {"code": "global/invalid-api-key", "message": "m"}}, errors.InvalidApiKey),
        (400, {"error": {"code": "global/invalid-parameters", "message": "m"}}, errors.InvalidParameters),
        (
            503,
            {"error": {"code": "provider/internal-unavailable", "message": "Provider unavailable"}},
            errors.ServerError,
        ),
    ],
)
def test_error_bodies_map_to_typed_errors(status, body, cls):
    err = errors.error_from_response(status, json.dumps(body).encode(), "application/json")
    assert type(err) is cls
    assert err.status == status
    assert err.message == body["error"]["message"]
    assert err.suggestion == body["error"].get("suggestion", "")


def test_non_json_error_bodies_are_classified_by_status():
    html = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    err = errors.error_from_response(502, html, "text/html", "/instance-operations/launch")
    assert isinstance(err, errors.ServerError)
    assert is_transient(err)
    ban = errors.error_from_response(429, b"Sorry, you have been banned you temporarily", "text/plain")
    assert isinstance(ban, errors.RateLimited)
    assert is_transient(ban)
    assert not is_transient(errors.error_from_response(400, b"", ""))


@pytest.mark.parametrize("content_type", ["text/html", "text/plain"])  # an edge may mislabel its page
def test_an_html_error_page_is_summarised_never_quoted(content_type):
    page = b"<html><head><title>502 Bad Gateway</title></head><body><center>cloudflare</center></body></html>"
    err = errors.error_from_response(502, page, content_type, "/ssh-keys")
    assert str(err) == "HTTP 502 from /ssh-keys (HTML error page)"


def test_a_text_error_body_is_kept_with_status_and_path():
    err = errors.error_from_response(503, b"upstream error 503", "text/plain", "/instances")
    assert str(err) == "HTTP 503 from /instances: non-JSON error body (text/plain): upstream error 503"

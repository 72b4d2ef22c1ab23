"""Shape checks of request bodies: types, lengths and patterns of the spec; messages say what to fix."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from .errors import ApiError, invalid_parameters

TAG_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9-:]+$")
HOSTNAME_PATTERN = re.compile(r"^[a-z0-9][0-9a-z-]{0,62}$")
FILESYSTEM_NAME_PATTERN = re.compile(r"^[a-zA-Z]+[0-9a-zA-Z-]*$")
MOUNT_POINT_PATTERN = re.compile(r"^(/home|/lambda/nfs|/data)[//a-zA-Z0-9-]*$")
PROTOCOLS = ("tcp", "udp", "icmp", "all")


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid_parameters(
            "Request body must be a JSON object.", "Send a JSON object with Content-Type: application/json."
        )
    return body


def string_field(
    body: dict[str, Any], name: str, *, required: bool, min_len: int = 0, max_len: int | None = None
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise invalid_parameters(f"{name}: Field required", f"Add `{name}` to the request body.")
        return None
    if not isinstance(value, str):
        raise invalid_parameters(f"{name}: Input should be a valid string")
    if len(value) < min_len:
        raise invalid_parameters(
            f"{name}: String should have at least {min_len} character{'s' if min_len != 1 else ''}"
        )
    if max_len is not None and len(value) > max_len:
        raise invalid_parameters(f"{name}: String should have at most {max_len} characters")
    return value


def string_list(body: dict[str, Any], name: str, *, required: bool) -> list[str]:
    value = body.get(name)
    if value is None:
        if required:
            raise invalid_parameters(f"{name}: Field required", f"Add `{name}` to the request body.")
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid_parameters(f"{name}: Input should be a valid list of strings")
    return value


def object_list(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise invalid_parameters(f"{name}: Input should be a valid list of objects")
    return value


def check_tags(tags: list[dict[str, Any]]) -> list[dict[str, str]]:
    checked = []
    for index, tag in enumerate(tags):
        key, value = tag.get("key"), tag.get("value")
        if not isinstance(key, str) or not isinstance(value, str):
            raise invalid_parameters(f"tags.{index}: key and value must both be strings")
        if len(key) > 55 or not TAG_KEY_PATTERN.match(key):
            raise invalid_parameters(
                f"tags.{index}.key: String should match pattern '{TAG_KEY_PATTERN.pattern}' "
                "and have at most 55 characters",
                "Use lowercase letters, digits, '-' and ':' in tag keys, starting with a letter.",
            )
        if len(value) > 128:
            raise invalid_parameters(f"tags.{index}.value: String should have at most 128 characters")
        checked.append({"key": key, "value": value})
    return checked


def check_quantity(body: dict[str, Any]) -> None:
    """`quantity` left the spec, but the live server accepts 1 and rejects more (../shared/lambda-cloud/NOTES.md §0
    #7)."""
    quantity = body.get("quantity")
    if quantity is None:
        return
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise invalid_parameters("quantity: Input should be a valid integer greater than or equal to 1")
    if quantity > 1:
        raise invalid_parameters("Requested too many instances.", "Launch one instance per request.")


def check_hostname(body: dict[str, Any]) -> str | None:
    hostname = string_field(body, "hostname", required=False, min_len=1, max_len=63)
    if hostname is not None and not HOSTNAME_PATTERN.match(hostname):
        raise invalid_parameters(f"hostname: String should match pattern '{HOSTNAME_PATTERN.pattern}'")
    return hostname


def check_user_data(body: dict[str, Any]) -> str | None:
    user_data = string_field(body, "user_data", required=False)
    if user_data is not None and len(user_data.encode()) > 1024 * 1024:
        raise invalid_parameters("user_data: must not exceed 1MB")
    return user_data


def check_mounts(body: dict[str, Any]) -> list[dict[str, str]]:
    mounts = []
    for index, entry in enumerate(object_list(body, "file_system_mounts")):
        mount_point, fs_id = entry.get("mount_point"), entry.get("file_system_id")
        if not isinstance(mount_point, str) or not isinstance(fs_id, str):
            raise invalid_parameters(f"file_system_mounts.{index}: mount_point and file_system_id must be strings")
        if len(mount_point) > 256 or not MOUNT_POINT_PATTERN.match(mount_point):
            raise invalid_parameters(
                f"file_system_mounts.{index}.mount_point: String should match pattern '{MOUNT_POINT_PATTERN.pattern}'",
                "Mount under /home, /lambda/nfs or /data.",
            )
        mounts.append({"mount_point": mount_point, "file_system_id": fs_id})
    return mounts


def check_image(body: dict[str, Any]) -> dict[str, str] | None:
    image = body.get("image")
    if image is None:
        return None
    if isinstance(image, dict) and isinstance(image.get("id"), str):
        return {"id": image["id"]}
    if isinstance(image, dict) and isinstance(image.get("family"), str):
        return {"family": image["family"]}
    raise invalid_parameters("image: Input should be an object with `id` or `family`")


def check_firewall_rules(rules: Any, field: str = "rules") -> list[dict[str, Any]]:
    if not isinstance(rules, list):
        raise invalid_parameters(f"{field}: Input should be a valid list")
    checked = []
    for index, rule in enumerate(rules):
        where = f"{field}.{index}"
        if not isinstance(rule, dict):
            raise invalid_parameters(f"{where}: Input should be an object")
        protocol = rule.get("protocol")
        if protocol not in PROTOCOLS:
            raise invalid_parameters(f"{where}.protocol: Input should be one of {', '.join(PROTOCOLS)}")
        port_range = rule.get("port_range")
        if protocol == "icmp":
            if port_range is not None:
                raise invalid_parameters(f"{where}.port_range: not allowed for protocol icmp")
        elif not (
            isinstance(port_range, list)
            and len(port_range) == 2
            and all(isinstance(p, int) and 1 <= p <= 65535 for p in port_range)
            and port_range[0] <= port_range[1]
        ):
            raise invalid_parameters(f"{where}.port_range: required as [min, max] with 1 <= min <= max <= 65535")
        source = rule.get("source_network")
        try:
            network = str(ipaddress.IPv4Network(source if "/" in str(source) else f"{source}/32", strict=False))
        except (ValueError, TypeError):
            raise invalid_parameters(f"{where}.source_network: must be an IPv4 CIDR such as 0.0.0.0/0") from None
        description = rule.get("description")
        if not isinstance(description, str) or len(description) > 128:
            raise invalid_parameters(f"{where}.description: required string of at most 128 characters")
        checked_rule: dict[str, Any] = {"protocol": protocol, "source_network": network, "description": description}
        if port_range is not None:
            checked_rule["port_range"] = list(port_range)
        checked.append(checked_rule)
    return checked


def check_ids(body: dict[str, Any]) -> list[str]:
    ids = string_list(body, "instance_ids", required=True)
    if not ids:
        raise invalid_parameters("instance_ids: List should have at least 1 item")
    return ids


__all__ = [
    "ApiError",
    "FILESYSTEM_NAME_PATTERN",
    "check_firewall_rules",
    "check_hostname",
    "check_ids",
    "check_image",
    "check_mounts",
    "check_quantity",
    "check_tags",
    "check_user_data",
    "object_list",
    "require_object",
    "string_field",
    "string_list",
]

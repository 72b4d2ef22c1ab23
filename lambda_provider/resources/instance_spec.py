"""The Instance's inputs: normalisation, validation for `check`, and the replace-relevant spec used by `diff`."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from pulumi.dynamic import CheckFailure

from lambda_provider.client import LambdaClient, LambdaError
from lambda_provider.domain import (
    NAME_MAX,
    RESERVED_TAG_PREFIX,
    TAG_KEY_MAX,
    TAG_KEY_PATTERN,
    TAG_VALUE_MAX,
)
from lambda_provider.resources import lookups
from lambda_provider.resources.placement import parse_placements
from lambda_provider.resources.values import as_float, as_str_dict, as_str_list, is_unknown

HOSTNAME_PATTERN = re.compile(r"^[a-z0-9][0-9a-z-]{0,62}$")
USER_DATA_MAX_BYTES = 1024 * 1024
# Inputs whose change replaces the instance (the API can change nothing but the name after launch).
REPLACE_KEYS = ("ssh_key_name", "file_system_names", "image", "user_data", "tags", "firewall_ruleset_ids", "hostname")


def user_data_digest(user_data: Any) -> str | None:
    if is_unknown(user_data):
        return user_data
    return hashlib.sha256(user_data.encode()).hexdigest() if isinstance(user_data, str) and user_data else None


def requested_spec(props: Mapping[str, Any]) -> dict[str, Any]:
    """The replace-relevant inputs in a canonical form (unknown values passed through)."""

    def keep(key: str, convert: Any) -> Any:
        value = props.get(key)
        return value if is_unknown(value) else convert(value)

    return {
        "ssh_key_name": keep("ssh_key_name", lambda v: v if isinstance(v, str) else None),
        "file_system_names": keep("file_system_names", lambda v: sorted(as_str_list(v))),
        "image": keep("image", lambda v: as_str_dict(v) or None),
        "user_data": user_data_digest(props.get("user_data")),
        "tags": keep("tags", as_str_dict),
        "firewall_ruleset_ids": keep("firewall_ruleset_ids", lambda v: sorted(as_str_list(v))),
        "hostname": keep("hostname", lambda v: v if isinstance(v, str) and v else None),
    }


def validate_static(news: Mapping[str, Any]) -> list[CheckFailure]:
    """Checks that need no API call."""
    failures: list[CheckFailure] = []

    def fail(prop: str, reason: str) -> None:
        failures.append(CheckFailure(prop, reason))

    placements = news.get("placements")
    if not is_unknown(placements):
        if not isinstance(placements, list) or not placements:
            fail(
                "placements",
                "give at least one placement: instance_type=... (and region=...) or "
                "placements=[{'instance_type': ..., 'region': ...}, ...] in preference order",
            )
        elif len(parse_placements(placements)) != len(placements):
            fail("placements", "each placement needs a string 'instance_type' (and optionally a string 'region')")

    key = news.get("ssh_key_name")
    if isinstance(key, list) and not is_unknown(key):
        fail(
            "ssh_key_name",
            f"Lambda launches with exactly one SSH key, got {len(key)} ({key}): pass one key "
            "name, and add further public keys through user_data",
        )
    elif not is_unknown(key) and (not isinstance(key, str) or not key):
        fail("ssh_key_name", "an SSH key name is required (an SshKey resource's name or an existing key's name)")

    name = news.get("name")
    if not is_unknown(name) and name is not None:
        if not isinstance(name, str):
            fail("name", "name must be a string")
        elif len(name) > NAME_MAX:
            fail("name", f"name is {len(name)} characters; Lambda allows at most {NAME_MAX}: shorten it")

    hostname = news.get("hostname")
    if (
        not is_unknown(hostname)
        and hostname is not None
        and (not isinstance(hostname, str) or not HOSTNAME_PATTERN.match(hostname))
    ):
        fail(
            "hostname",
            f"hostname {hostname!r} must match {HOSTNAME_PATTERN.pattern} (lowercase letters, digits "
            "and '-', 1-63 characters, not starting with '-')",
        )

    tags = news.get("tags")
    if not is_unknown(tags) and tags is not None:
        if not isinstance(tags, dict):
            fail("tags", "tags must be a mapping of key to value")
        else:
            for tag_key, tag_value in tags.items():
                if is_unknown(tag_value):
                    continue
                if len(tag_key) > TAG_KEY_MAX or not TAG_KEY_PATTERN.match(tag_key):
                    fail(
                        "tags",
                        f"tag key {tag_key!r} is invalid: use lowercase letters, digits, '-' and ':', "
                        f"start with a letter, at least 2 and at most {TAG_KEY_MAX} characters",
                    )
                elif tag_key.startswith(RESERVED_TAG_PREFIX):
                    fail(
                        "tags",
                        f"tag key {tag_key!r} uses the reserved prefix {RESERVED_TAG_PREFIX!r} "
                        "(ownership tags set by the provider): rename it",
                    )
                if not isinstance(tag_value, str) or len(tag_value) > TAG_VALUE_MAX:
                    fail("tags", f"tag {tag_key!r}: value must be a string of at most {TAG_VALUE_MAX} characters")

    image = news.get("image")
    if (
        not is_unknown(image)
        and image is not None
        and (not isinstance(image, dict) or len(image) != 1 or next(iter(image)) not in ("id", "family"))
    ):
        fail("image", "image must be {'family': 'lambda-stack-22-04'} or {'id': '<image id>'}")

    user_data = news.get("user_data")
    if not is_unknown(user_data) and user_data is not None:
        if not isinstance(user_data, str):
            fail("user_data", "user_data must be a string (cloud-init user data)")
        elif len(user_data.encode()) > USER_DATA_MAX_BYTES:
            fail("user_data", "user_data exceeds 1 MB: move large content to a filesystem or download it at boot")

    timeout = news.get("boot_timeout_seconds")
    if not is_unknown(timeout) and timeout is not None and (as_float(timeout) is None or as_float(timeout) <= 0):
        fail("boot_timeout_seconds", "boot_timeout_seconds must be a positive number of seconds")
    return failures


def validate_against_catalogue(news: Mapping[str, Any], client: LambdaClient) -> list[CheckFailure]:
    """Checks against the live catalogue: types, regions, architectures with images, filesystem regions."""
    placements = news.get("placements")
    if is_unknown(placements):
        return []
    options = parse_placements(placements)
    if not options:
        return []
    try:
        catalog = lookups.instance_types(client)
        region_names = {r.name for r in lookups.regions(client)}
        image_list = lookups.images(client)
    except LambdaError as exc:
        return [CheckFailure("placements", f"cannot validate against the Lambda API at {client.base_url}: {exc}")]
    failures: list[CheckFailure] = []
    image = news.get("image") if isinstance(news.get("image"), dict) else None
    family = image.get("family") if image and not is_unknown(image.get("family")) else None
    for option in options:
        item = catalog.get(option.instance_type)
        if item is None:
            failures.append(
                CheckFailure(
                    "placements",
                    f"unknown instance type {option.instance_type!r}; known types: {', '.join(sorted(catalog))}",
                )
            )
            continue
        if option.region is None:
            continue
        if region_names and option.region not in region_names:
            failures.append(
                CheckFailure(
                    "placements", f"unknown region {option.region!r}; regions: {', '.join(sorted(region_names))}"
                )
            )
            continue
        arch = item.instance_type.architecture
        usable = [i for i in image_list if i.architecture == arch and (family is None or i.family == family)]
        if image_list and not any(i.region and i.region.name == option.region for i in usable):
            where = sorted({i.region.name for i in usable if i.region})
            what = f"{arch} image" + (f" of family {family!r}" if family else "")
            failures.append(
                CheckFailure(
                    "placements",
                    f"region {option.region!r} does not offer {option.instance_type} (no {what} there); "
                    f"regions that can run it: {', '.join(where) or 'none'}",
                )
            )
    failures.extend(_filesystem_region_failures(news, options, client))
    return failures


def _filesystem_region_failures(news: Mapping[str, Any], options: list, client: LambdaClient) -> list[CheckFailure]:
    names = news.get("file_system_names")
    if is_unknown(names) or not names:
        return []
    try:
        existing = {f.name: f for f in lookups.filesystems(client)}
    except LambdaError:
        return []
    regions = {n: existing[n].region.name for n in as_str_list(names) if n in existing and existing[n].region}
    if len(set(regions.values())) > 1:
        return [
            CheckFailure(
                "file_system_names",
                f"filesystems are in different regions {regions}; an instance "
                "can only mount filesystems of its own region",
            )
        ]
    if regions:
        region = next(iter(regions.values()))
        if not any(o.region in (None, region) for o in options):
            return [
                CheckFailure(
                    "placements",
                    f"the filesystems {sorted(regions)} are in {region}, but no "
                    f"placement allows {region}: add a placement in {region}",
                )
            ]
    return []

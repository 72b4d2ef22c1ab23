"""Short-lived per-process caches of read-only catalogue calls made by `check` (preview runs it per resource)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pulumi.dynamic import CheckFailure

from lambda_provider.client import LambdaClient, LambdaError
from lambda_provider.client.models import Filesystem, Image, InstanceTypeAvailability, Region
from lambda_provider.resources.settings import ProviderSettings

T = TypeVar("T")
TTL_SECONDS = 20.0
_lock = threading.Lock()
_cache: dict[tuple[str, str], tuple[float, Any]] = {}


def _cached(client: LambdaClient, what: str, fetch: Callable[[], T]) -> T:
    key = (client.base_url, what)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit is not None and now - hit[0] < TTL_SECONDS:
            return hit[1]
    value = fetch()
    with _lock:
        _cache[key] = (time.monotonic(), value)
    return value


def instance_types(client: LambdaClient) -> dict[str, InstanceTypeAvailability]:
    return _cached(client, "instance-types", client.instance_types.list)


def regions(client: LambdaClient) -> list[Region]:
    return _cached(client, "regions", client.regions.list)


def region_failures(settings: ProviderSettings, region: str) -> list[CheckFailure]:
    """`check`'s verdict on a region name against `GET /regions` (empty when it exists)."""
    try:
        with settings.client() as client:
            known = {r.name for r in regions(client)}
    except (LambdaError, ValueError) as exc:
        return [
            CheckFailure(
                "region",
                f"cannot validate the region against the Lambda API ({exc}); run the command "
                "again once the API answers",
            )
        ]
    if known and region not in known:
        return [CheckFailure("region", f"unknown region {region!r}; regions: {', '.join(sorted(known))}")]
    return []


def images(client: LambdaClient) -> list[Image]:
    return _cached(client, "images", client.images.list)


def filesystems(client: LambdaClient) -> list[Filesystem]:
    return _cached(client, "filesystems", client.filesystems.list)


def clear() -> None:
    with _lock:
        _cache.clear()

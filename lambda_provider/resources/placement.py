"""Placement with failover: pick the first acceptable (type, region) that has capacity now, without a launch.

Capacity comes from `GET /instance-types` (`regions_with_capacity_available`), the same check SkyPilot and errand
make, so no launch request (1 per 12 s) is spent probing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from lambda_provider.client.models import InstanceTypeAvailability
from lambda_provider.domain import Placement, accepts, parse_placements

__all__ = ["NoCapacity", "Placement", "accepts", "capacity_summary", "choose", "parse_placements"]


class NoCapacity(Exception):
    pass


def capacity_summary(catalog: Mapping[str, InstanceTypeAvailability], types: Iterable[str] | None = None) -> str:
    wanted = list(types) if types is not None else sorted(catalog)
    parts = []
    for name in wanted:
        item = catalog.get(name)
        if item and item.regions_with_capacity:
            parts.append(f"{name} in {', '.join(r.name for r in item.regions_with_capacity)}")
    return "; ".join(parts) if parts else "none"


def choose(
    placements: Sequence[Placement],
    catalog: Mapping[str, InstanceTypeAvailability],
    *,
    required_region: str | None = None,
    exclude: Iterable[tuple[str, str]] = (),
) -> tuple[str, str]:
    """First (type, region) in preference order with capacity now, honouring `required_region` (filesystems)."""
    excluded = set(exclude)
    for option in placements:
        item = catalog.get(option.instance_type)
        if item is None:
            continue
        if option.region is not None:
            candidates = [option.region] if item.has_capacity_in(option.region) else []
        else:
            candidates = [r.name for r in item.regions_with_capacity]
        for region in candidates:
            if required_region is not None and region != required_region:
                continue
            if (option.instance_type, region) in excluded:
                continue
            return option.instance_type, region
    listed = [p.instance_type for p in placements]
    where = f" (the filesystems are in {required_region})" if required_region else ""
    raise NoCapacity(
        f"no capacity now for any acceptable placement [{', '.join(str(p) for p in placements)}]{where}. "
        f"Capacity exists now for the listed types: {capacity_summary(catalog, dict.fromkeys(listed))}; "
        f"for any type: {capacity_summary(catalog)}. Add one of these as a fallback placement or retry later."
    )

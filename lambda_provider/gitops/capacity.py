"""Capacity right now for a node's acceptable placements, from `GET /instance-types`, and the alternates the node
could use when none has any."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lambda_provider.client import LambdaClient, LambdaError
from lambda_provider.client.models import InstanceTypeAvailability
from lambda_provider.domain import Placement, worst_case_price
from lambda_provider.resources.placement import NoCapacity, choose

Catalogue = Mapping[str, InstanceTypeAvailability]
MAX_ALTERNATES = 3


@dataclass(frozen=True)
class Capacity:
    instance_type: str | None  # what a launch would pick now (None: nothing has capacity)
    region: str | None
    text: str  # the Markdown cell
    price_cents_per_hour: int | None


def fetch_catalogue(api_key: str | None, api_url: str | None) -> tuple[Catalogue, str | None]:
    """(`GET /instance-types` by type, None), or ({}, why capacity is unknown)."""
    if not api_key:
        return {}, "capacity unknown: LAMBDA_API_KEY is not set"
    try:
        with LambdaClient(api_key, api_url, timeout=20) as client:
            return client.instance_types.list(), None
    except LambdaError as exc:
        return {}, f"capacity unknown: GET /instance-types failed: {exc}"


def price_of(catalogue: Catalogue, instance_type: str | None) -> int | None:
    item = catalogue.get(instance_type or "")
    return item.instance_type.price_cents_per_hour if item else None


def worst_price(catalogue: Catalogue, placements: Sequence[Placement]) -> int | None:
    """The most expensive acceptable type (what the fleet's budget check assumes)."""
    prices = {o.instance_type: p for o in placements if (p := price_of(catalogue, o.instance_type)) is not None}
    worst = worst_case_price(prices, prices)
    return worst[0] if worst else None


def alternates(catalogue: Catalogue, placements: Sequence[Placement]) -> list[str]:
    """Other types the node could take now, cheapest first: capacity in a region its placements allow (a fleet's
    nodes share the filesystem's region), as many GPUs and the same architecture as a wanted type (a node group
    holds one GPU count, and mixed architectures need a flag). The wanted types themselves are never alternates:
    `choose` already looked for them wherever the placements allow."""
    wanted = [catalogue[p.instance_type] for p in placements if p.instance_type in catalogue]
    shapes = {(i.instance_type.specs.gpus, i.instance_type.architecture) for i in wanted}
    names = {p.instance_type for p in placements}
    any_region = any(p.region is None for p in placements)
    regions = {p.region for p in placements if p.region is not None}
    found = []
    for item in sorted(catalogue.values(), key=lambda i: (i.instance_type.price_cents_per_hour, i.name)):
        if item.name in names or (item.instance_type.specs.gpus, item.instance_type.architecture) not in shapes:
            continue
        usable = [r.name for r in item.regions_with_capacity if any_region or r.name in regions]
        if usable:
            found.append(f"{item.name} in {usable[0]} (${item.instance_type.price_cents_per_hour / 100:.2f}/h)")
    return found[:MAX_ALTERNATES]


def capacity_for(catalogue: Catalogue, placements: Sequence[Placement]) -> Capacity:
    if not placements:
        return Capacity(None, None, "unknown placement", None)
    try:
        type_name, region = choose(placements, catalogue)
    except NoCapacity:
        alt = alternates(catalogue, placements)
        text = "❌ none now" + (f"; alternates: {', '.join(alt)}" if alt else "; no alternate has capacity either")
        return Capacity(None, None, text, worst_price(catalogue, placements))
    first = placements[0]
    if first.accepts(type_name, region):
        text = f"✅ available in {region}"
    else:
        text = f"⚠️ {first} has none; falls back to {type_name} in {region}"
    return Capacity(type_name, region, text, price_of(catalogue, type_name))

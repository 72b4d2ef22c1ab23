"""Routes of the catalogue: instance types (with the regions that have capacity now), regions, images."""

from __future__ import annotations

from typing import Any

from ..catalog import Catalog, ImageSpec
from ..router import Request, api


def image_record(image: ImageSpec, catalog: Catalog) -> dict[str, Any]:
    """The live `Image` record (key order as recorded)."""
    return {
        "id": image.id,
        "created_time": image.created_time,
        "updated_time": image.updated_time,
        "name": image.name,
        "description": image.description,
        "family": image.family,
        "version": image.version,
        "architecture": image.architecture,
        "region": catalog.region_api(image.region),
    }


@api("GET", "/instance-types")
def list_instance_types(request: Request) -> Any:
    catalog = request.app.catalog
    with_capacity = request.app.state.instance_types.regions_with_capacity()
    return {
        name: {
            "instance_type": spec.to_api(),
            "regions_with_capacity_available": [catalog.region_api(r) for r in with_capacity[name]],
        }
        for name, spec in catalog.instance_types.items()
    }


@api("GET", "/regions")
def list_regions(request: Request) -> Any:
    return [request.app.catalog.region_api(r) for r in request.app.catalog.regions]


@api("GET", "/images")
def list_images(request: Request) -> Any:
    return [image_record(i, request.app.catalog) for i in request.app.catalog.images]


@api("GET", "/audit-events", envelope_extra={"page_token": None})
def list_audit_events(request: Request) -> Any:
    # Not recorded by the emulator: an empty last page (`page_token` null beside `data`).
    return []

"""Which image a launch gets: by id or family, in the launch region, of the instance type's architecture."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .. import errors
from ..catalog import Catalog, ImageSpec, InstanceTypeSpec


def _version_key(image: ImageSpec) -> tuple[list[int], str]:
    """Newest build first: `22.4.5-1459` after `22.4.5-1026`; updated_time breaks ties."""
    return [int(part) for part in re.findall(r"\d+", image.version)], image.updated_time


class Images:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def resolve(self, selector: dict[str, str] | None, region: str, spec: InstanceTypeSpec) -> dict[str, str]:
        """`{"family", "id"}` of the image to boot; 400 when none fits (object-does-not-exist, or
        invalid-parameters for an image of the wrong architecture)."""
        candidates = [i for i in self._catalog.images if i.region == region]
        if selector is None:
            family = self._catalog.default_image_family  # "Defaults to the latest Lambda Stack image."
            match = self._newest(i for i in candidates if i.family == family and i.architecture == spec.architecture)
            return {"family": family, "id": match.id if match else ""}
        if "id" in selector:
            match = next((i for i in candidates if i.id == selector["id"]), None)
        else:
            family = [i for i in candidates if i.family == selector["family"]]
            match = self._newest(i for i in family if i.architecture == spec.architecture) or self._newest(family)
        if match is None:
            raise errors.launch_resource_not_found(
                f"Image {selector} does not exist in region '{region}'.",
                "Pick an image from GET /images for this region.",
            )
        if match.architecture != spec.architecture:
            # UNCONFIRMED live text; an x86 image cannot boot a Grace (arm64) machine (../shared/lambda-cloud/NOTES.md
            # §6.3).
            raise errors.invalid_parameters(
                f"Image architecture {match.architecture} does not match "
                f"instance type architecture {spec.architecture}.",
                f"Pick an {spec.architecture} image.",
            )
        return {"family": match.family, "id": match.id}

    @staticmethod
    def _newest(images: Iterable[ImageSpec]) -> ImageSpec | None:
        return max(images, key=_version_key, default=None)

"""Static catalogue of the emulated cloud: instance types, regions, images, limits, read from YAML.

`catalog.yaml` beside this file holds the defaults; a user file given with `--config` is merged over it. The
image list is the recorded live one (`images_file`, default recorded_images.yaml) plus `images_extra`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CATALOG_PATH = Path(__file__).with_name("catalog.yaml")

# Boot times by GPU count where a type gives none (../shared/lambda-cloud/NOTES.md §4.1: 1 GPU 3-5 min, multi-GPU 10-15
# min, 8x 15-25 min).
_DEFAULT_ACTIVE_SECONDS = {0: 180.0, 1: 244.0, 2: 600.0, 4: 720.0, 8: 900.0}
_DEFAULT_IP_SECONDS = 71.0


class CatalogError(ValueError):
    """The catalogue or a user config file is malformed; the message says what to fix."""


@dataclass(frozen=True)
class GpuModel:
    model: str
    memory_mib: int


@dataclass(frozen=True)
class InstanceTypeSpec:
    name: str
    description: str
    gpu_description: str
    price_cents_per_hour: int
    architecture: str
    vcpus: int
    memory_gib: int
    storage_gib: int
    gpus: int
    gpu: GpuModel | None
    ip_seconds: float
    active_seconds: float
    capacity: dict[str, int]
    quota: int | None

    def to_api(self) -> dict[str, Any]:
        """The `InstanceType` object; `architecture` is undeclared in the spec but returned live
        (../shared/lambda-cloud/NOTES.md §3.1)."""
        return {
            "name": self.name,
            "description": self.description,
            "gpu_description": self.gpu_description,
            "price_cents_per_hour": self.price_cents_per_hour,
            "architecture": self.architecture,
            "specs": {
                "vcpus": self.vcpus,
                "memory_gib": self.memory_gib,
                "storage_gib": self.storage_gib,
                "gpus": self.gpus,
            },
        }

    @property
    def uname_machine(self) -> str:
        """What `uname -m` prints on such a machine."""
        return "aarch64" if self.architecture == "arm64" else "x86_64"


@dataclass(frozen=True)
class ImageSpec:
    """One record of GET /images: an image build in one region (`region` is the region's name)."""

    id: str
    family: str
    name: str
    description: str
    version: str
    architecture: str
    region: str
    created_time: str
    updated_time: str


@dataclass(frozen=True)
class RateLimitConfig:
    enabled: bool = True
    requests_per_second: float = 1.0
    burst: int = 5
    launch_interval_seconds: float = 12.0


@dataclass(frozen=True)
class LifecycleConfig:
    terminate_available_seconds: float = 5.0
    terminating_seconds: float = 10.0
    terminated_retention_seconds: float = 300.0


@dataclass(frozen=True)
class Catalog:
    regions: dict[str, str]
    instance_types: dict[str, InstanceTypeSpec]
    images: list[ImageSpec]
    default_image_family: str
    lifecycle: LifecycleConfig
    rate_limits: RateLimitConfig
    instances_per_account: int
    filesystems_per_account: int
    ssh_keys_per_account: int
    faults: list[dict[str, Any]] = field(default_factory=list)

    def region_api(self, name: str) -> dict[str, str]:
        return {"name": name, "description": self.regions[name]}


def load_catalog(user_config: Path | None = None) -> Catalog:
    raw = _read_yaml(DEFAULT_CATALOG_PATH)
    raw["images_file"] = str(DEFAULT_CATALOG_PATH.parent / raw["images_file"])
    if user_config is not None:
        user = _read_yaml(user_config)
        if "images" in user:
            raise CatalogError(
                f"{user_config}: `images:` is not read any more; the list is the recorded live one "
                "(images_file, default recorded_images.yaml beside catalog.yaml). Add records with "
                "`images_extra: [{id: <an id from GET /images>, region: <region>}]`, or point `images_file:` at "
                "a YAML file with an `images:` list of records"
            )
        if "images_file" in user:
            user["images_file"] = str(Path(user_config).parent / str(user["images_file"]))
        raw = _merge(raw, user)
    try:
        return _build(raw)
    except (KeyError, TypeError, ValueError) as exc:
        where = user_config or DEFAULT_CATALOG_PATH
        raise CatalogError(f"invalid emulator catalogue in {where}: {exc!r}") from exc


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise CatalogError(f"cannot read emulator config {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise CatalogError(f"emulator config {path} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise CatalogError(f"emulator config {path} must be a YAML mapping at top level")
    return loaded


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge mappings; lists and scalars in `override` replace. `capacity` maps replace whole."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if key != "capacity" and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _build(raw: dict[str, Any]) -> Catalog:
    regions = {str(k): str(v) for k, v in raw["regions"].items()}
    types = {name: _build_type(name, body or {}, regions) for name, body in raw["instance_types"].items()}
    images = _build_images(Path(raw["images_file"]), raw.get("images_extra") or [], regions)
    quotas = raw.get("quotas", {})
    faults = raw.get("faults") or []
    if not isinstance(faults, list):
        raise ValueError("faults must be a list of rule objects")
    return Catalog(
        regions=regions,
        instance_types=types,
        images=images,
        default_image_family=str(raw.get("default_image_family", "lambda-stack-24-04")),
        lifecycle=LifecycleConfig(**raw.get("lifecycle", {})),
        rate_limits=RateLimitConfig(**raw.get("rate_limits", {})),
        instances_per_account=int(quotas.get("instances_per_account", 16)),
        filesystems_per_account=int(quotas.get("filesystems_per_account", 24)),
        ssh_keys_per_account=int(quotas.get("ssh_keys_per_account", 1024)),
        faults=faults,
    )


def _build_type(name: str, body: dict[str, Any], regions: dict[str, str]) -> InstanceTypeSpec:
    specs = body["specs"]
    gpus = int(specs["gpus"])
    description = str(body["description"])
    gpu_description = str(body.get("gpu_description") or description.split("x ", 1)[-1])
    capacity = {str(r): int(n) for r, n in (body.get("capacity") or {}).items()}
    unknown = sorted(set(capacity) - set(regions))
    if unknown:
        raise ValueError(f"instance type {name}: capacity names unknown regions {unknown}")
    gpu = body.get("gpu")
    default_active = _DEFAULT_ACTIVE_SECONDS.get(gpus, 900.0)
    architecture = str(body.get("architecture", "x86_64"))
    if architecture not in ("x86_64", "arm64"):
        raise ValueError(f"instance type {name}: architecture must be x86_64 or arm64, not {architecture!r}")
    return InstanceTypeSpec(
        name=name,
        description=description,
        gpu_description=gpu_description,
        price_cents_per_hour=int(body["price_cents_per_hour"]),
        architecture=architecture,
        vcpus=int(specs["vcpus"]),
        memory_gib=int(specs["memory_gib"]),
        storage_gib=int(specs["storage_gib"]),
        gpus=gpus,
        gpu=GpuModel(str(gpu["model"]), int(gpu["memory_mib"])) if gpu and gpus else None,
        ip_seconds=float(body.get("ip_seconds", _DEFAULT_IP_SECONDS)),
        active_seconds=float(body.get("active_seconds", default_active)),
        capacity=capacity,
        quota=int(body["quota"]) if body.get("quota") is not None else None,
    )


def _build_images(path: Path, extra: list[dict[str, Any]], regions: dict[str, str]) -> list[ImageSpec]:
    """The records of `path` (`images:` list), then each `images_extra` entry `{id, region}`: a copy of the
    first record with that id, listed in one more region."""
    records = _read_yaml(path).get("images")
    if not isinstance(records, list):
        raise ValueError(f"{path}: needs an `images:` list of records")
    fields = list(ImageSpec.__dataclass_fields__)
    images = []
    for body in records:
        missing = [f for f in fields if f not in body]
        if missing:
            raise ValueError(f"{path}: image record {body.get('id')!r} lacks {missing}")
        images.append(ImageSpec(**{f: str(body[f]) for f in fields}))
    by_id = {}
    for image in images:
        by_id.setdefault(image.id, image)
    for entry in extra:
        source = by_id.get(str(entry.get("id")))
        if source is None:
            raise ValueError(f"images_extra: no image with id {entry.get('id')!r} in {path}")
        images.append(ImageSpec(**{**source.__dict__, "region": str(entry["region"])}))
    unknown = sorted({i.region for i in images} - set(regions))
    if unknown:
        raise ValueError(f"images name regions that are not in `regions:`: {unknown}")
    return images

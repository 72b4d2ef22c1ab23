"""Typed domain objects decoded leniently from API payloads.

Lenient means: unknown fields are kept in `extra` (the live API adds fields without notice: `workspace_id`,
`is_reserved`, `architecture`), missing optional fields get defaults, and a wrong-typed optional field does not
crash decoding. Only the fields an object cannot exist without (`id`, `name`) are required.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from lambda_provider.domain import GONE_OR_GOING_STATUSES, TERMINAL_STATUSES

__all__ = ["GONE_OR_GOING_STATUSES", "TERMINAL_STATUSES"]  # (and the classes below) the statuses live in the domain


def _str(raw: dict[str, Any], key: str, default: str = "") -> str:
    value = raw.get(key)
    return value if isinstance(value, str) else default


def _opt_str(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) and value != "" else None


def _int(raw: dict[str, Any], key: str, default: int = 0) -> int:
    value = raw.get(key)
    if isinstance(value, bool):
        return default
    if isinstance(value, (int, float)):
        return int(value)
    return default


def _str_list(raw: dict[str, Any], key: str) -> list[str]:
    value = raw.get(key)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _dict(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, dict) else {}


def _extra(raw: dict[str, Any], cls: type) -> dict[str, Any]:
    known = {f.name for f in fields(cls)}
    return {k: v for k, v in raw.items() if k not in known}


def _require(raw: Any, key: str, what: str) -> str:
    if not isinstance(raw, dict) or not isinstance(raw.get(key), str):
        raise ValueError(f"cannot decode {what}: field {key!r} missing in {str(raw)[:200]}")
    return raw[key]


@dataclass(frozen=True)
class Region:
    name: str
    description: str = ""

    @classmethod
    def from_api(cls, raw: Any) -> Region:
        if isinstance(raw, str):  # tolerate a bare region name
            return cls(name=raw)
        return cls(name=_require(raw, "name", "region"), description=_str(raw, "description"))


@dataclass(frozen=True)
class InstanceTypeSpecs:
    vcpus: int = 0
    memory_gib: int = 0
    storage_gib: int = 0
    gpus: int = 0

    @classmethod
    def from_api(cls, raw: Any) -> InstanceTypeSpecs:
        raw = raw if isinstance(raw, dict) else {}
        return cls(_int(raw, "vcpus"), _int(raw, "memory_gib"), _int(raw, "storage_gib"), _int(raw, "gpus"))


@dataclass(frozen=True)
class InstanceType:
    name: str
    description: str = ""
    gpu_description: str = ""
    price_cents_per_hour: int = 0
    specs: InstanceTypeSpecs = field(default_factory=InstanceTypeSpecs)
    architecture: str = "x86_64"  # undeclared in the spec; absent in older answers
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_api(cls, raw: Any) -> InstanceType:
        name = _require(raw, "name", "instance type")
        return cls(
            name=name,
            description=_str(raw, "description"),
            gpu_description=_str(raw, "gpu_description"),
            price_cents_per_hour=_int(raw, "price_cents_per_hour"),
            specs=InstanceTypeSpecs.from_api(raw.get("specs")),
            architecture=_str(raw, "architecture", "x86_64"),
            extra=_extra(raw, cls),
        )


@dataclass(frozen=True)
class InstanceTypeAvailability:
    """One entry of `GET /instance-types`: the type and the regions that can launch it right now."""

    instance_type: InstanceType
    regions_with_capacity: tuple[Region, ...] = ()

    @property
    def name(self) -> str:
        return self.instance_type.name

    def has_capacity_in(self, region: str) -> bool:
        return any(r.name == region for r in self.regions_with_capacity)

    @classmethod
    def from_api(cls, key: str, raw: Any) -> InstanceTypeAvailability:
        raw = raw if isinstance(raw, dict) else {}
        type_raw = raw.get("instance_type")
        if not isinstance(type_raw, dict):
            type_raw = {"name": key}
        type_raw = {"name": key, **type_raw}
        regions = raw.get("regions_with_capacity_available")
        regions = regions if isinstance(regions, list) else []
        return cls(InstanceType.from_api(type_raw), tuple(Region.from_api(r) for r in regions))


@dataclass(frozen=True)
class FilesystemMount:
    mount_point: str
    file_system_id: str

    @classmethod
    def from_api(cls, raw: Any) -> FilesystemMount:
        raw = raw if isinstance(raw, dict) else {}
        return cls(_str(raw, "mount_point"), _str(raw, "file_system_id"))


@dataclass(frozen=True)
class Instance:
    id: str
    status: str = ""
    name: str | None = None
    ip: str | None = None
    private_ip: str | None = None
    hostname: str | None = None
    region: Region | None = None
    instance_type: InstanceType | None = None
    ssh_key_names: tuple[str, ...] = ()
    file_system_names: tuple[str, ...] = ()
    file_system_mounts: tuple[FilesystemMount, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    firewall_ruleset_ids: tuple[str, ...] = ()
    jupyter_url: str | None = None
    ssh_port: int = 22  # emulator-only field; the real API has none and SSH is on 22
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_gone_or_going(self) -> bool:
        return self.status in GONE_OR_GOING_STATUSES

    @property
    def is_ready(self) -> bool:
        return self.status == "active" and bool(self.ip)

    def has_tags(self, wanted: dict[str, str]) -> bool:
        return all(self.tags.get(k) == v for k, v in wanted.items())

    @classmethod
    def from_api(cls, raw: Any) -> Instance:
        instance_id = _require(raw, "id", "instance")
        tags: dict[str, str] = {}
        raw_tags = raw.get("tags")
        if isinstance(raw_tags, list):
            for entry in raw_tags:
                if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                    tags[entry["key"]] = str(entry.get("value", ""))
        elif isinstance(raw_tags, dict):
            tags = {str(k): str(v) for k, v in raw_tags.items()}
        rulesets = raw.get("firewall_rulesets")
        ruleset_ids = tuple(
            r["id"]
            for r in (rulesets if isinstance(rulesets, list) else [])
            if isinstance(r, dict) and isinstance(r.get("id"), str)
        )
        mounts = raw.get("file_system_mounts")
        region = raw.get("region")
        itype = raw.get("instance_type")
        return cls(
            id=instance_id,
            status=_str(raw, "status"),
            name=_opt_str(raw, "name"),
            ip=_opt_str(raw, "ip"),
            private_ip=_opt_str(raw, "private_ip"),
            hostname=_opt_str(raw, "hostname"),
            region=Region.from_api(region) if isinstance(region, (dict, str)) and region else None,
            instance_type=InstanceType.from_api(itype) if isinstance(itype, dict) and "name" in itype else None,
            ssh_key_names=tuple(_str_list(raw, "ssh_key_names")),
            file_system_names=tuple(_str_list(raw, "file_system_names")),
            file_system_mounts=tuple(FilesystemMount.from_api(m) for m in (mounts if isinstance(mounts, list) else [])),
            tags=tags,
            firewall_ruleset_ids=ruleset_ids,
            jupyter_url=_opt_str(raw, "jupyter_url"),
            ssh_port=_int(raw, "ssh_port", 22) or 22,
            extra=_extra(raw, cls),
        )


@dataclass(frozen=True)
class SshKey:
    id: str
    name: str
    public_key: str = ""
    private_key: str | None = None  # only when the server generated the pair
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_api(cls, raw: Any) -> SshKey:
        return cls(
            id=_require(raw, "id", "SSH key"),
            name=_require(raw, "name", "SSH key"),
            public_key=_str(raw, "public_key"),
            private_key=_opt_str(raw, "private_key"),
            extra=_extra(raw, cls),
        )


@dataclass(frozen=True)
class Filesystem:
    id: str
    name: str
    mount_point: str = ""
    region: Region | None = None
    is_in_use: bool = False
    created: str = ""
    bytes_used: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_api(cls, raw: Any) -> Filesystem:
        name = _require(raw, "name", "filesystem")
        region = raw.get("region")
        used = raw.get("bytes_used")
        return cls(
            id=_require(raw, "id", "filesystem"),
            name=name,
            mount_point=_str(raw, "mount_point", f"/lambda/nfs/{name}"),
            region=Region.from_api(region) if isinstance(region, (dict, str)) and region else None,
            is_in_use=bool(raw.get("is_in_use", False)),
            created=_str(raw, "created"),
            bytes_used=int(used) if isinstance(used, (int, float)) and not isinstance(used, bool) else None,
            extra=_extra(raw, cls),
        )


@dataclass(frozen=True)
class Image:
    id: str
    name: str = ""
    family: str = ""
    version: str = ""
    architecture: str = "x86_64"
    region: Region | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_api(cls, raw: Any) -> Image:
        region = raw.get("region") if isinstance(raw, dict) else None
        return cls(
            id=_require(raw, "id", "image"),
            name=_str(raw, "name"),
            family=_str(raw, "family"),
            version=_str(raw, "version"),
            architecture=_str(raw, "architecture", "x86_64"),
            region=Region.from_api(region) if isinstance(region, (dict, str)) and region else None,
            extra=_extra(raw, cls),
        )


@dataclass(frozen=True)
class FirewallRule:
    protocol: str
    source_network: str
    port_range: tuple[int, int] | None = None
    description: str = ""

    @classmethod
    def from_api(cls, raw: Any) -> FirewallRule:
        raw = raw if isinstance(raw, dict) else {}
        ports = raw.get("port_range")
        port_range = (int(ports[0]), int(ports[1])) if isinstance(ports, list) and len(ports) == 2 else None
        return cls(_str(raw, "protocol"), _str(raw, "source_network"), port_range, _str(raw, "description"))

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "protocol": self.protocol,
            "source_network": self.source_network,
            "description": self.description,
        }
        if self.port_range is not None:
            body["port_range"] = list(self.port_range)
        return body


@dataclass(frozen=True)
class FirewallRuleset:
    id: str
    name: str = ""
    region: Region | None = None
    rules: tuple[FirewallRule, ...] = ()
    instance_ids: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_api(cls, raw: Any) -> FirewallRuleset:
        region = raw.get("region") if isinstance(raw, dict) else None
        rules = raw.get("rules") if isinstance(raw, dict) else None
        return cls(
            id=_require(raw, "id", "firewall ruleset"),
            name=_str(raw, "name"),
            region=Region.from_api(region) if isinstance(region, (dict, str)) and region else None,
            rules=tuple(FirewallRule.from_api(r) for r in (rules if isinstance(rules, list) else [])),
            instance_ids=tuple(_str_list(raw, "instance_ids")),
            extra=_extra(raw, cls),
        )

"""Request bodies of the public and control APIs as pydantic models: the spec's types, lengths and patterns.

The live API is FastAPI/pydantic (its error texts are pydantic's, e.g. "quantity: Input should be less than or
equal to 1", ../shared/lambda-cloud/NOTES.md §1 "Validation style"), so the emulator validates with the same
library; validation.py turns a `ValidationError` into the live `global/invalid-parameters` text. Lax mode, as
FastAPI; no model forbids unknown fields (the spec sets no `additionalProperties: false` on requests).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

# The spec's patterns (InstanceLaunchRequest, RequestedTagEntry, RequestedFilesystemMountEntry, filesystem create).
TAG_KEY_PATTERN = r"^[a-z][a-z0-9-:]+$"
HOSTNAME_PATTERN = r"^[a-z0-9][0-9a-z-]{0,62}$"
FILESYSTEM_NAME_PATTERN = r"^[a-zA-Z]+[0-9a-zA-Z-]*$"
MOUNT_POINT_PATTERN = r"^(/home|/lambda/nfs|/data)[//a-zA-Z0-9-]*$"
USER_DATA_MAX_BYTES = 1024 * 1024

Name64 = Annotated[str, StringConstraints(max_length=64)]


def _at_most_1mb(value: str) -> str:
    if len(value.encode()) > USER_DATA_MAX_BYTES:
        raise ValueError("must not exceed 1MB")
    return value


def _ipv4_network(value: str) -> str:
    """`1.2.3.4` means `1.2.3.4/32` (the spec's FirewallRule.source_network)."""
    try:
        return str(ipaddress.IPv4Network(value if "/" in value else f"{value}/32", strict=False))
    except ValueError:
        raise ValueError("must be an IPv4 CIDR such as 0.0.0.0/0") from None


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---------------------------------------------------------------------------------------------- launch
class RequestedTagEntry(Body):
    key: Annotated[str, StringConstraints(max_length=55, pattern=TAG_KEY_PATTERN)]
    value: Annotated[str, StringConstraints(max_length=128)]


class RequestedFilesystemMountEntry(Body):
    mount_point: Annotated[str, StringConstraints(max_length=256, pattern=MOUNT_POINT_PATTERN)]
    file_system_id: str


class ImageSpecification(Body):
    """`{"id": ...}` (ImageSpecificationID) or `{"family": ...}` (ImageSpecificationFamily); `id` wins."""

    id: str | None = None
    family: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ImageSpecification:
        if self.id is None and self.family is None:
            raise ValueError("image must be an object with `id` or `family`")
        return self

    def selector(self) -> dict[str, str]:
        return {"id": self.id} if self.id is not None else {"family": str(self.family)}


class FirewallRulesetEntry(Body):
    id: str


class LaunchRequest(Body):
    """InstanceLaunchRequest. launch checks its fields one at a time, in the live order (models/instances.py)."""

    region_name: str
    instance_type_name: str
    ssh_key_names: list[str]
    file_system_names: list[str] = []
    file_system_mounts: list[RequestedFilesystemMountEntry] = []
    hostname: Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=HOSTNAME_PATTERN)] | None = None
    name: Name64 | None = None
    image: ImageSpecification | None = None
    user_data: Annotated[str, AfterValidator(_at_most_1mb)] | None = None
    tags: list[RequestedTagEntry] = []
    firewall_rulesets: list[FirewallRulesetEntry] = []
    # Gone from the spec; the live server accepts 1 and rejects more (../shared/lambda-cloud/NOTES.md §0 #7).
    quantity: Annotated[int, Field(ge=1, strict=True)] | None = None


class InstanceIdsRequest(Body):
    """terminate and restart."""

    instance_ids: Annotated[list[str], Field(min_length=1)]


class InstanceModificationRequest(Body):
    name: Name64


# ---------------------------------------------------------------------------------------------- SSH keys, filesystems
class AddSSHKeyRequest(Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    public_key: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None


class FilesystemCreateRequest(Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=FILESYSTEM_NAME_PATTERN)]
    region: str


# ---------------------------------------------------------------------------------------------- firewall
class FirewallRule(Body):
    protocol: Literal["tcp", "udp", "icmp", "all"]
    port_range: Annotated[list[Annotated[int, Field(ge=1, le=65535)]], Field(min_length=2, max_length=2)] | None = None
    source_network: Annotated[str, AfterValidator(_ipv4_network)]
    description: Annotated[str, StringConstraints(max_length=128)]

    @model_validator(mode="after")
    def _ports_by_protocol(self) -> FirewallRule:
        if self.protocol == "icmp" and self.port_range is not None:
            raise ValueError("port_range is not allowed for protocol icmp")
        if self.protocol != "icmp" and self.port_range is None:
            raise ValueError(f"port_range is required for protocol {self.protocol}")
        if self.port_range is not None and self.port_range[0] > self.port_range[1]:
            raise ValueError("port_range must be [min, max] with min <= max")
        return self

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class FirewallRulesPutRequest(Body):
    data: list[FirewallRule]


class FirewallRulesetCreateRequest(Body):
    name: Name64
    region: str
    rules: list[FirewallRule]


class FirewallRulesetPatchRequest(Body):
    name: Name64 | None = None
    rules: list[FirewallRule] | None = None


# ---------------------------------------------------------------------------------------------- control API
BootHang = Literal["ip", "no-ip"] | None


class CapacityRequest(Body):
    instance_type: str
    region: str
    available: Annotated[int, Field(ge=0, strict=True)]


class RateLimitsRequest(Body):
    enabled: bool = False


class BootRequest(Body):
    hang: BootHang = None


class InstanceStatusRequest(Body):
    status: Literal["active", "unhealthy", "preempted"]

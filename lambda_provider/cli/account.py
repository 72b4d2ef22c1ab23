"""Everything in a Lambda account, each instance with its owner (from our ownership tags) or marked orphan, what it
costs and has cost; filesystems with their size and what the API says they cost."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from lambda_provider.client import LambdaClient
from lambda_provider.client.models import Filesystem, Instance
from lambda_provider.resources.naming import PROJECT_TAG, STACK_TAG


@dataclass(frozen=True)
class InstanceRow:
    instance: Instance
    owner: str | None  # "stack" (or "project/stack" for another project), None for an orphan
    hourly_usd: float
    created: float | None  # epoch seconds
    created_exact: bool  # False: the first time this machine saw it (the API has no creation time)

    @property
    def orphan(self) -> bool:
        return self.owner is None

    def age(self, now: float) -> float | None:
        return None if self.created is None else max(0.0, now - self.created)

    def spent(self, now: float) -> float | None:
        age = self.age(now)
        return None if age is None else self.hourly_usd * age / 3600.0


@dataclass(frozen=True)
class FilesystemRow:
    filesystem: Filesystem
    monthly_usd: float | None  # None: the API gives no price for it

    @property
    def size_bytes(self) -> int | None:
        return self.filesystem.bytes_used


def owner_of(instance: Instance, project: str) -> str | None:
    stack = instance.tags.get(STACK_TAG)
    if not stack or PROJECT_TAG not in instance.tags:
        return None
    owner_project = instance.tags[PROJECT_TAG]
    return stack if owner_project == project else f"{owner_project}/{stack}"


class FirstSeen:
    """When this machine first listed each instance (the API reports no creation time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.times: dict[str, float] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.times = {}

    def see(self, ids: list[str], now: float) -> None:
        changed = False
        for instance_id in ids:
            if instance_id not in self.times:
                self.times[instance_id] = now
                changed = True
        if changed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}")
            tmp.write_text(json.dumps(self.times, sort_keys=True))
            tmp.replace(self.path)


def filesystem_price(fs: Filesystem) -> float | None:
    for key, value in fs.extra.items():
        if ("price" in key or "cost" in key) and isinstance(value, int | float) and not isinstance(value, bool):
            return value / 100.0 if "cents" in key else float(value)
    return None


def live_instances(client: LambdaClient) -> list[Instance]:
    return [i for i in client.instances.list() if not i.is_gone_or_going]


def instance_rows(
    client: LambdaClient,
    project: str,
    seen: FirstSeen,
    created: dict[str, float] | None = None,
    now: float | None = None,
) -> list[InstanceRow]:
    """Live instances; `created` (instance id -> time) comes from a stack's state, the rest from first sight."""
    now = time.time() if now is None else now
    instances = live_instances(client)
    seen.see([i.id for i in instances], now)
    created = created or {}
    rows = []
    for inst in instances:
        cents = inst.instance_type.price_cents_per_hour if inst.instance_type else 0
        exact = inst.id in created
        rows.append(
            InstanceRow(
                inst,
                owner_of(inst, project),
                cents / 100.0,
                created[inst.id] if exact else seen.times.get(inst.id),
                exact,
            )
        )
    return rows


def filesystem_rows(client: LambdaClient) -> list[FilesystemRow]:
    return [FilesystemRow(fs, filesystem_price(fs)) for fs in client.filesystems.list()]


def size(num_bytes: int | None) -> str:
    if num_bytes is None:
        return "size unknown"
    value = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{num_bytes} B"

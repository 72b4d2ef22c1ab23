"""Instances: launch (validated in the live order), rename, terminate, restart, and the time-driven lifecycle.

Lifecycle (times are catalogue seconds x time_scale, from `launched_at`):
  booting (no ip) --ip_seconds--> booting (ip) --active_seconds--> active   (the reconciler flips to active only
  once the instance's SSH endpoint listens, so `active` always means "you can ssh in")
  terminate --> terminating --terminating_seconds--> terminated --terminated_retention_seconds--> gone (404)
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from .. import errors
from ..catalog import Catalog
from ..store import Store, new_id
from ..validation import Staged
from .accounts import Account
from .filesystems import Filesystems
from .firewall import Firewall
from .images import Images
from .instance_types import InstanceTypes
from .ssh_keys import SshKeys
from .statuses import LIVE_STATUSES, RUNNING_STATUSES


@dataclass(frozen=True)
class Timings:
    """Lifecycle durations in wall seconds (catalogue seconds x time scale)."""

    time_scale: float
    terminate_available: float
    terminating: float
    terminated_retention: float

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale


@dataclass(frozen=True)
class ReconcileItem:
    """What the reconciler needs to know about one instance."""

    id: str
    status: str
    ip: str | None
    ssh_port: int | None
    ready_due: bool  # booting, boot time elapsed, not hung: start SSH then mark active
    restart_generation: int
    doc: dict[str, Any]


class Instances:
    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        timings: Timings,
        *,
        ssh_keys: SshKeys,
        filesystems: Filesystems,
        capacity: InstanceTypes,
        images: Images,
        firewall: Firewall,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self.timings = timings
        self._ssh_keys = ssh_keys
        self._filesystems = filesystems
        self._capacity = capacity
        self._images = images
        self._firewall = firewall

    # ------------------------------------------------------------------ launch
    def launch(self, account: Account, body: Staged, now: float) -> dict[str, Any]:
        """Validate in the live order (../shared/lambda-cloud/NOTES.md §3.3), then reserve capacity and insert a
        booting instance. Each `body[...]` validates that field (schemas.LaunchRequest) when it is reached."""
        with self._store.lock:
            region = body["region_name"]
            type_name = body["instance_type_name"]
            key_names = body["ssh_key_names"]
            fs_names = body["file_system_names"]
            if len(key_names) != 1:
                raise errors.invalid_parameters(
                    "Exactly one SSH key must be specified.", "Pass exactly one name in ssh_key_names."
                )
            key = self._ssh_keys.by_name(account, key_names[0])
            if key is None:
                raise errors.launch_resource_not_found(
                    f"SSH key '{key_names[0]}' does not exist.", "Add the key with POST /ssh-keys or fix its name.", 404
                )
            spec = self._catalog.instance_types.get(type_name)
            if spec is None:
                raise errors.launch_resource_not_found(
                    f"Instance type '{type_name}' does not exist.", "Pick a name from GET /instance-types.", 404
                )
            if region not in self._catalog.regions:
                raise errors.invalid_parameters(f"Region {region} does not exist", "Pick a region from GET /regions.")
            requested_mounts = [m.model_dump() for m in body["file_system_mounts"]]
            mounts = self._filesystems.resolve_mounts(account, region, fs_names, requested_mounts)
            tags = [t.model_dump() for t in body["tags"]]
            if (body["quantity"] or 1) > 1:
                raise errors.invalid_parameters("Requested too many instances.", "Launch one instance per request.")
            name = body["name"]
            hostname = body["hostname"]
            user_data = body["user_data"]
            image_spec = body["image"]
            image = self._images.resolve(image_spec.selector() if image_spec else None, region, spec)
            ruleset_ids = self._firewall.resolve(account, region, [r.id for r in body["firewall_rulesets"]])
            if self._capacity.available(type_name, region) <= 0:
                raise errors.insufficient_capacity()
            live = [i for i in self._store.all("instances", account.id) if i["status"] in LIVE_STATUSES]
            same_type = [i for i in live if i["type"] == type_name]
            if len(live) >= self._catalog.instances_per_account or (
                spec.quota is not None and len(same_type) >= spec.quota
            ):
                raise errors.quota_exceeded()
            doc = {
                "id": new_id(),
                "account_id": account.id,
                "name": name,
                "region": region,
                "type": type_name,
                "ssh_key_name": key["name"],
                # keys added later are not pushed to instances (../shared/lambda-cloud/NOTES.md §3.5)
                "public_key": key["public_key"],
                "file_system_ids": [m["file_system_id"] for m in mounts],
                "mounts": mounts,
                "hostname": hostname,
                "image": image,
                "user_data": user_data,
                "tags": tags,
                "firewall_ruleset_ids": ruleset_ids,
                "status": "booting",
                "launched_at": now,
                "ip": None,
                "ssh_port": None,
                "hang_boot": None,
                "restart_generation": 0,
                "terminating_at": None,
                "terminated_at": None,
                "jupyter_token": secrets.token_hex(16),
                "jupyter_host": secrets.token_hex(16),
            }
            self._store.put("instances", doc)
            return doc

    # ------------------------------------------------------------------ reads and operations
    def list(self, account: Account) -> list[dict[str, Any]]:
        with self._store.lock:
            return self._store.all("instances", account.id)

    def get(self, account: Account, instance_id: str) -> dict[str, Any]:
        with self._store.lock:
            doc = self._store.get("instances", account.id, instance_id)
            if doc is None:
                raise errors.instance_not_found()
            return doc

    def rename(self, account: Account, instance_id: str, name: str) -> dict[str, Any]:
        with self._store.lock:
            doc = self.get(account, instance_id)
            doc["name"] = name
            self._store.put("instances", doc)
            return doc

    def _get_all(self, account: Account, ids: list[str]) -> list[dict[str, Any]]:
        docs = [self._store.get("instances", account.id, i) for i in ids]
        found = [d for d in docs if d is not None]
        if len(found) != len(docs):
            raise errors.instance_not_found()
        return found

    def terminate(self, account: Account, ids: list[str], now: float) -> list[dict[str, Any]]:
        with self._store.lock:
            docs = self._get_all(account, ids)
            for doc in docs:
                if doc["status"] not in ("terminating", "terminated"):
                    doc["status"] = "terminating"
                    doc["terminating_at"] = now
                    self._store.put("instances", doc)
            return docs

    def restart(self, account: Account, ids: list[str]) -> list[dict[str, Any]]:
        with self._store.lock:
            docs = self._get_all(account, ids)
            if any(d["status"] not in RUNNING_STATUSES for d in docs):
                raise errors.conflict()
            for doc in docs:
                doc["restart_generation"] += 1  # the reconciler kills processes and reopens SSH
                self._store.put("instances", doc)
            return docs

    # ------------------------------------------------------------------ lifecycle (reconciler side)
    def tick(self, now: float) -> None:
        """Apply the time-driven transitions that need no SSH endpoint."""
        timings = self.timings
        with self._store.lock:
            for doc in self._store.all("instances"):
                spec = self._catalog.instance_types[doc["type"]]
                changed = False
                if (
                    doc["status"] == "booting"
                    and not doc["ip"]
                    and doc["hang_boot"] != "no-ip"
                    and (doc.get("boot_now") or now - doc["launched_at"] >= timings.scaled(spec.ip_seconds))
                ):
                    doc["ip"] = self._allocate_ip()
                    changed = True
                if doc["status"] == "terminating" and now - doc["terminating_at"] >= timings.terminating:
                    doc["status"] = "terminated"
                    doc["terminated_at"] = now
                    changed = True
                if doc["status"] == "terminated" and now - doc["terminated_at"] >= timings.terminated_retention:
                    self._store.delete("instances", doc["id"])
                    continue
                if changed:
                    self._store.put("instances", doc)

    def _allocate_ip(self) -> str:
        counter = self._store.next_counter("ip_counter")
        # 127.77.0.2 upwards: all of 127/8 is loopback on Linux, so each instance gets its own address.
        return f"127.77.{(counter // 250) % 250}.{counter % 250 + 2}"

    def reconcile_view(self, now: float) -> list[ReconcileItem]:
        with self._store.lock:
            items = []
            for doc in self._store.all("instances"):
                spec = self._catalog.instance_types[doc["type"]]
                ready_due = (
                    doc["status"] == "booting"
                    and bool(doc["ip"])
                    and doc["hang_boot"] is None
                    and (doc.get("boot_now") or now - doc["launched_at"] >= self.timings.scaled(spec.active_seconds))
                )
                items.append(
                    ReconcileItem(
                        doc["id"], doc["status"], doc["ip"], doc["ssh_port"], ready_due, doc["restart_generation"], doc
                    )
                )
            return items

    def mark_running(self, instance_id: str, port: int) -> None:
        """SSH endpoint is listening: a booting instance becomes active; a running one records its port."""
        with self._store.lock:
            doc = self._store.get("instances", None, instance_id)
            if doc is None:
                return
            if doc["status"] == "booting" and doc["hang_boot"] is None:
                doc["status"] = "active"
            doc["ssh_port"] = port
            self._store.put("instances", doc)

    # ------------------------------------------------------------------ control API
    def doc(self, instance_id: str) -> dict[str, Any]:
        """Any account's instance (control API); 404 when there is none."""
        with self._store.lock:
            doc = self._store.get("instances", None, instance_id)
            if doc is None:
                raise errors.instance_not_found()
            return doc

    def all_docs(self) -> list[dict[str, Any]]:
        with self._store.lock:
            return self._store.all("instances")

    def set_status(self, instance_id: str, status: str) -> dict[str, Any]:
        """ "unhealthy", "preempted", or "active" (ends a hung or unfinished boot at once)."""
        with self._store.lock:
            doc = self.doc(instance_id)
            if doc["status"] in ("terminating", "terminated"):
                raise errors.conflict()
            if status == "active" and doc["status"] == "booting":
                doc["hang_boot"] = None
                doc["boot_now"] = True  # skip the rest of the boot clock
            elif status == "active" and doc["status"] == "preempted":
                raise errors.conflict()
            else:
                doc["status"] = status
            self._store.put("instances", doc)
            return doc

    def hang_boot(self, instance_id: str, stage: str | None) -> None:
        """Stage "ip" (booting with ip) or "no-ip" never finishes; None resumes the boot."""
        with self._store.lock:
            doc = self.doc(instance_id)
            doc["hang_boot"] = stage
            self._store.put("instances", doc)

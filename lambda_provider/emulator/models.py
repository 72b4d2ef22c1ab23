"""State of the emulated cloud: accounts, SSH keys, filesystems, instances, firewall, kept in SQLite.

Every public method of `CloudState` takes one lock, so HTTP threads and the lifecycle reconciler never interleave
inside an operation (launch checks capacity and inserts atomically). Each mutation is committed at once, so a
killed emulator loses nothing that was acknowledged.

Instance lifecycle (times are catalogue seconds x time_scale, from `launched_at`):
  booting (no ip) --ip_seconds--> booting (ip) --active_seconds--> active   (the reconciler flips to active only
  once the instance's SSH endpoint listens, so `active` always means "you can ssh in")
  terminate --> terminating --terminating_seconds--> terminated --retention--> gone (404)
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import errors, validation
from .catalog import Catalog, InstanceTypeSpec

LIVE_STATUSES = ("booting", "active", "unhealthy", "terminating")  # hold capacity, quota, filesystems, keys
RUNNING_STATUSES = ("active", "unhealthy")  # have an SSH endpoint
DEFAULT_GLOBAL_RULES = [
    {
        "protocol": "tcp",
        "port_range": [22, 22],
        "source_network": "0.0.0.0/0",
        "description": "Allow SSH from anywhere",
    },
    {"protocol": "icmp", "source_network": "0.0.0.0/0", "description": "Allow ICMP from anywhere"},
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (key TEXT PRIMARY KEY, account_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ssh_keys (id TEXT PRIMARY KEY, account_id TEXT NOT NULL, seq INTEGER, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS filesystems (id TEXT PRIMARY KEY, account_id TEXT NOT NULL, seq INTEGER, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instances (id TEXT PRIMARY KEY, account_id TEXT NOT NULL, seq INTEGER, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rulesets (id TEXT PRIMARY KEY, account_id TEXT NOT NULL, seq INTEGER, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS capacity (type TEXT, region TEXT, total INTEGER NOT NULL, PRIMARY KEY (type, region));
"""
_TABLES = ("ssh_keys", "filesystems", "instances", "rulesets")


@dataclass(frozen=True)
class Account:
    id: str
    workspace_id: str
    user_id: str
    email: str


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


def _now_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def _new_id() -> str:
    return uuid.uuid4().hex


class CloudState:
    def __init__(self, db_path: Path, catalog: Catalog, time_scale: float) -> None:
        self.catalog = catalog
        self.time_scale = time_scale
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(db_path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    # ----------------------------------------------------------------- plumbing
    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _next_seq(self) -> int:
        seq = int(self._meta("seq") or 0) + 1
        self._set_meta("seq", str(seq))
        return seq

    def _put(self, table: str, doc: dict[str, Any]) -> None:
        row = self._db.execute(f"SELECT seq FROM {table} WHERE id=?", (doc["id"],)).fetchone()
        seq = row[0] if row else self._next_seq()
        self._db.execute(
            f"INSERT OR REPLACE INTO {table} (id, account_id, seq, doc) VALUES (?, ?, ?, ?)",
            (doc["id"], doc["account_id"], seq, json.dumps(doc)),
        )

    def _get(self, table: str, account_id: str | None, item_id: str) -> dict[str, Any] | None:
        if account_id is None:
            row = self._db.execute(f"SELECT doc FROM {table} WHERE id=?", (item_id,)).fetchone()
        else:
            row = self._db.execute(
                f"SELECT doc FROM {table} WHERE id=? AND account_id=?", (item_id, account_id)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def _all(self, table: str, account_id: str | None = None) -> list[dict[str, Any]]:
        if account_id is None:
            rows = self._db.execute(f"SELECT doc FROM {table} ORDER BY seq").fetchall()
        else:
            rows = self._db.execute(
                f"SELECT doc FROM {table} WHERE account_id=? ORDER BY seq", (account_id,)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def _delete(self, table: str, item_id: str) -> None:
        self._db.execute(f"DELETE FROM {table} WHERE id=?", (item_id,))

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    # ----------------------------------------------------------------- accounts
    def ensure_default_account(self, api_key: str | None) -> str:
        """Return the API key printed at start-up: `api_key` if given, else the data dir's stable default key."""
        with self._lock:
            account_id = self._meta("default_account")
            if account_id is None:
                account_id = self._create_account()
                self._set_meta("default_account", account_id)
            key = api_key or self._meta("default_api_key")
            if key is None:
                key = f"secret_emulator_{secrets.token_hex(16)}.{secrets.token_hex(16)}"
                self._set_meta("default_api_key", key)
            self._db.execute("INSERT OR REPLACE INTO api_keys (key, account_id) VALUES (?, ?)", (key, account_id))
            return key

    def _create_account(self) -> str:
        account = {"id": _new_id(), "workspace_id": _new_id(), "user_id": _new_id()}
        account["email"] = f"user-{account['user_id'][:8]}@emulator.invalid"
        self._db.execute("INSERT INTO accounts (id, doc) VALUES (?, ?)", (account["id"], json.dumps(account)))
        return account["id"]

    def create_account(self) -> tuple[str, str]:
        """A second account with its own key (for tests of per-account isolation and rate limits)."""
        with self._lock:
            account_id = self._create_account()
            key = f"secret_emulator_{secrets.token_hex(16)}.{secrets.token_hex(16)}"
            self._db.execute("INSERT INTO api_keys (key, account_id) VALUES (?, ?)", (key, account_id))
            return account_id, key

    def account_for_key(self, key: str) -> Account | None:
        with self._lock:
            row = self._db.execute(
                "SELECT a.doc FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.key=?", (key,)
            ).fetchone()
            return Account(**json.loads(row[0])) if row else None

    # ----------------------------------------------------------------- SSH keys
    def list_ssh_keys(self, account: Account) -> list[dict[str, Any]]:
        with self._lock:
            return [self._ssh_key_api(k, account) for k in self._all("ssh_keys", account.id)]

    def add_ssh_key(self, account: Account, name: str, public_key: str) -> dict[str, Any]:
        with self._lock:
            existing = self._all("ssh_keys", account.id)
            if any(k["name"] == name for k in existing):
                # Live text contains "name must be unique" (../shared/lambda-cloud/NOTES.md §3.5); code UNCONFIRMED, the
                # spec allows only invalid-parameters on this endpoint.
                raise errors.invalid_parameters(
                    "SSH key name must be unique.", "Choose another name or delete the existing key first."
                )
            if len(existing) >= self.catalog.ssh_keys_per_account:
                raise errors.invalid_parameters("SSH key limit reached.", "Delete unused SSH keys.")
            doc = {"id": _new_id(), "account_id": account.id, "name": name, "public_key": public_key}
            self._put("ssh_keys", doc)
            return self._ssh_key_api(doc, account)

    def delete_ssh_key(self, account: Account, key_id: str) -> None:
        with self._lock:
            key = self._get("ssh_keys", account.id, key_id)
            if key is None:
                raise errors.ssh_key_not_found()
            in_use = any(
                i["ssh_key_name"] == key["name"] and i["status"] in LIVE_STATUSES + ("preempted",)
                for i in self._all("instances", account.id)
            )
            if in_use:
                # Live: HTTP 400 "Key is currently in use, cannot delete" (../shared/lambda-cloud/NOTES.md §3.5); code
                # not captured live, the spec allows only invalid-parameters here.
                raise errors.invalid_parameters(
                    "Key is currently in use, cannot delete", "Terminate the instances using this key first."
                )
            self._delete("ssh_keys", key_id)

    @staticmethod
    def _ssh_key_api(doc: dict[str, Any], account: Account) -> dict[str, Any]:
        # `workspace_id` is undeclared in the spec but returned live since June 2026 (../shared/lambda-cloud/NOTES.md
        # §3.5).
        return {
            "id": doc["id"],
            "name": doc["name"],
            "public_key": doc["public_key"],
            "workspace_id": account.workspace_id,
        }

    # ----------------------------------------------------------------- filesystems
    def list_filesystems(self, account: Account, sizes: dict[str, int]) -> list[dict[str, Any]]:
        with self._lock:
            return [
                self._filesystem_api(fs, account, sizes.get(fs["id"])) for fs in self._all("filesystems", account.id)
            ]

    def filesystem_ids(self, account: Account) -> list[str]:
        with self._lock:
            return [fs["id"] for fs in self._all("filesystems", account.id)]

    def create_filesystem(self, account: Account, name: str, region: str) -> dict[str, Any]:
        with self._lock:
            if region not in self.catalog.regions:
                raise errors.invalid_parameters(f"Region {region} does not exist", "Pick a region from GET /regions.")
            existing = self._all("filesystems", account.id)
            if any(fs["name"] == name for fs in existing):
                raise errors.ApiError(
                    400, "global/duplicate", f"A filesystem named '{name}' already exists.", "Choose another name."
                )
            if len(existing) >= self.catalog.filesystems_per_account:
                raise errors.quota_exceeded()
            doc = {"id": _new_id(), "account_id": account.id, "name": name, "region": region, "created": time.time()}
            self._put("filesystems", doc)
            return self._filesystem_api(doc, account, 0)

    def delete_filesystem(self, account: Account, fs_id: str) -> dict[str, Any]:
        with self._lock:
            fs = self._get("filesystems", account.id, fs_id)
            if fs is None:
                raise errors.filesystem_not_found()
            if self._filesystem_in_use(fs_id):
                # `terminating` counts as in use (../shared/lambda-cloud/NOTES.md §3.6): callers must retry after
                # termination.
                raise errors.ApiError(
                    400,
                    "filesystems/filesystem-in-use",
                    "Filesystem is in use by one or more instances.",
                    "Terminate the instances using the filesystem (and wait for `terminated`), then retry.",
                )
            self._delete("filesystems", fs_id)
            return fs

    def _filesystem_in_use(self, fs_id: str) -> bool:
        return any(
            fs_id in i["file_system_ids"] and i["status"] in LIVE_STATUSES + ("preempted",)
            for i in self._all("instances")
        )

    def _filesystem_api(self, doc: dict[str, Any], account: Account, bytes_used: int | None) -> dict[str, Any]:
        body = {
            "id": doc["id"],
            "name": doc["name"],
            "mount_point": f"/lambda/nfs/{doc['name']}",
            "created": _now_iso(doc["created"]),
            "created_by": {"id": account.user_id, "email": account.email, "status": "active"},
            "is_in_use": self._filesystem_in_use(doc["id"]),
            "region": self.catalog.region_api(doc["region"]),
        }
        if bytes_used is not None:
            body["bytes_used"] = bytes_used
        return body

    # ----------------------------------------------------------------- capacity
    def _capacity_total(self, type_name: str, region: str) -> int:
        row = self._db.execute("SELECT total FROM capacity WHERE type=? AND region=?", (type_name, region)).fetchone()
        if row:
            return int(row[0])
        return self.catalog.instance_types[type_name].capacity.get(region, 0)

    def _capacity_used(self, type_name: str, region: str) -> int:
        return sum(
            1
            for i in self._all("instances")
            if i["type"] == type_name and i["region"] == region and i["status"] in LIVE_STATUSES
        )

    def available(self, type_name: str, region: str) -> int:
        with self._lock:
            return max(0, self._capacity_total(type_name, region) - self._capacity_used(type_name, region))

    def set_available(self, type_name: str, region: str, available: int) -> None:
        """Make exactly `available` more instances launchable (the running ones keep their slots)."""
        with self._lock:
            total = self._capacity_used(type_name, region) + max(0, available)
            self._db.execute(
                "INSERT OR REPLACE INTO capacity (type, region, total) VALUES (?, ?, ?)", (type_name, region, total)
            )

    def instance_types_api(self) -> dict[str, Any]:
        with self._lock:
            used: dict[tuple[str, str], int] = {}
            for i in self._all("instances"):
                if i["status"] in LIVE_STATUSES:
                    used[(i["type"], i["region"])] = used.get((i["type"], i["region"]), 0) + 1
            totals = {(t, r): n for t, r, n in self._db.execute("SELECT type, region, total FROM capacity").fetchall()}
            result = {}
            for name, spec in self.catalog.instance_types.items():
                regions = []
                for region in self.catalog.regions:
                    total = totals.get((name, region), spec.capacity.get(region, 0))
                    if total - used.get((name, region), 0) > 0:
                        regions.append(self.catalog.region_api(region))
                result[name] = {"instance_type": spec.to_api(), "regions_with_capacity_available": regions}
            return result

    # ----------------------------------------------------------------- launch
    def launch(self, account: Account, body: dict[str, Any], now: float) -> dict[str, Any]:
        """Validate in the live order (../shared/lambda-cloud/NOTES.md §3.3), then reserve capacity and insert a
        booting instance."""
        with self._lock:
            region = validation.string_field(body, "region_name", required=True)
            type_name = validation.string_field(body, "instance_type_name", required=True)
            key_names = validation.string_list(body, "ssh_key_names", required=True)
            fs_names = validation.string_list(body, "file_system_names", required=False)
            assert region is not None and type_name is not None
            if len(key_names) != 1:
                raise errors.invalid_parameters(
                    "Exactly one SSH key must be specified.", "Pass exactly one name in ssh_key_names."
                )
            key = next((k for k in self._all("ssh_keys", account.id) if k["name"] == key_names[0]), None)
            if key is None:
                raise errors.launch_resource_not_found(
                    f"SSH key '{key_names[0]}' does not exist.", "Add the key with POST /ssh-keys or fix its name.", 404
                )
            spec = self.catalog.instance_types.get(type_name)
            if spec is None:
                raise errors.launch_resource_not_found(
                    f"Instance type '{type_name}' does not exist.", "Pick a name from GET /instance-types.", 404
                )
            if region not in self.catalog.regions:
                raise errors.invalid_parameters(f"Region {region} does not exist", "Pick a region from GET /regions.")
            mounts = self._resolve_mounts(account, region, fs_names, validation.check_mounts(body))
            tags = validation.check_tags(validation.object_list(body, "tags"))
            validation.check_quantity(body)
            name = validation.string_field(body, "name", required=False, max_len=64)
            hostname = validation.check_hostname(body)
            user_data = validation.check_user_data(body)
            image = self._resolve_image(validation.check_image(body), region, spec)
            ruleset_ids = self._resolve_rulesets(account, region, validation.object_list(body, "firewall_rulesets"))
            if self._capacity_total(type_name, region) - self._capacity_used(type_name, region) <= 0:
                raise errors.insufficient_capacity()
            live = [i for i in self._all("instances", account.id) if i["status"] in LIVE_STATUSES]
            same_type = [i for i in live if i["type"] == type_name]
            if len(live) >= self.catalog.instances_per_account or (
                spec.quota is not None and len(same_type) >= spec.quota
            ):
                raise errors.quota_exceeded()
            doc = {
                "id": _new_id(),
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
            self._put("instances", doc)
            return doc

    def _resolve_mounts(
        self, account: Account, region: str, fs_names: list[str], requested: list[dict[str, str]]
    ) -> list[dict[str, str]]:
        filesystems = self._all("filesystems", account.id)
        by_id = {fs["id"]: fs for fs in filesystems}
        custom = {}
        for entry in requested:
            fs = by_id.get(entry["file_system_id"])
            if fs is None or fs["region"] != region:
                raise errors.launch_resource_not_found(
                    f"Filesystem with id '{entry['file_system_id']}' does not exist in region '{region}', "
                    "or you do not have permission to access it.",
                    "Check the filesystem ID and its region.",
                )
            custom[fs["id"]] = entry["mount_point"]
        mounts = []
        for fs_name in fs_names:
            fs = next((f for f in filesystems if f["name"] == fs_name and f["region"] == region), None)
            if fs is None:
                # Live 2026-08-24: object-does-not-exist with this text, not file-system-in-wrong-region
                # (../shared/lambda-cloud/NOTES.md §3.3); the live status was not recorded, we use 400.
                raise errors.launch_resource_not_found(
                    f"Filesystem with name '{fs_name}' does not exist in region '{region}', "
                    "or you do not have permission to access it.",
                    "Create the filesystem in the launch region, or launch where the filesystem is.",
                )
            mounts.append({"file_system_id": fs["id"], "name": fs["name"], "mount_point": custom.pop(fs["id"], None)})
        for fs_id, mount_point in custom.items():
            mounts.append({"file_system_id": fs_id, "name": by_id[fs_id]["name"], "mount_point": mount_point})
        for mount in mounts:
            mount["mount_point"] = mount["mount_point"] or f"/lambda/nfs/{mount['name']}"
        return mounts

    def _resolve_image(self, image: dict[str, str] | None, region: str, spec: InstanceTypeSpec) -> dict[str, str]:
        candidates = [i for i in self.catalog.images if i.region == region]
        if image is None:
            family = self.catalog.default_image_family
            match = next((i for i in candidates if i.family == family and i.architecture == spec.architecture), None)
            return {"family": family, "id": match.id if match else ""}
        if "id" in image:
            match = next((i for i in candidates if i.id == image["id"]), None)
        else:
            match = next(
                (i for i in candidates if i.family == image["family"] and i.architecture == spec.architecture), None
            )
            match = match or next((i for i in candidates if i.family == image["family"]), None)
        if match is None:
            raise errors.launch_resource_not_found(
                f"Image {image} does not exist in region '{region}'.", "Pick an image from GET /images for this region."
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

    def _resolve_rulesets(self, account: Account, region: str, entries: list[dict[str, Any]]) -> list[str]:
        ids = []
        for entry in entries:
            ruleset = self._get("rulesets", account.id, str(entry.get("id")))
            if ruleset is None or ruleset["region"] != region:
                raise errors.launch_resource_not_found(
                    f"Firewall ruleset '{entry.get('id')}' does not exist in region '{region}'.",
                    "Create the ruleset in the launch region.",
                )
            ids.append(ruleset["id"])
        return ids

    # ----------------------------------------------------------------- instances
    def list_instances(self, account: Account, now: float) -> list[dict[str, Any]]:
        with self._lock:
            return [self.instance_api(i, account, now) for i in self._all("instances", account.id)]

    def get_instance(self, account: Account, instance_id: str, now: float) -> dict[str, Any]:
        with self._lock:
            doc = self._get("instances", account.id, instance_id)
            if doc is None:
                raise errors.instance_not_found()
            return self.instance_api(doc, account, now)

    def rename_instance(self, account: Account, instance_id: str, name: str, now: float) -> dict[str, Any]:
        with self._lock:
            doc = self._get("instances", account.id, instance_id)
            if doc is None:
                raise errors.instance_not_found()
            doc["name"] = name
            self._put("instances", doc)
            return self.instance_api(doc, account, now)

    def terminate(self, account: Account, ids: list[str], now: float) -> list[dict[str, Any]]:
        with self._lock:
            docs = [self._get("instances", account.id, i) for i in ids]
            if any(d is None for d in docs):
                raise errors.instance_not_found()
            result = []
            for doc in docs:
                assert doc is not None
                if doc["status"] not in ("terminating", "terminated"):
                    doc["status"] = "terminating"
                    doc["terminating_at"] = now
                    self._put("instances", doc)
                result.append(self.instance_api(doc, account, now))
            return result

    def restart(self, account: Account, ids: list[str], now: float) -> list[dict[str, Any]]:
        with self._lock:
            docs = [self._get("instances", account.id, i) for i in ids]
            if any(d is None for d in docs):
                raise errors.instance_not_found()
            if any(d["status"] not in RUNNING_STATUSES for d in docs if d):
                raise errors.conflict()
            result = []
            for doc in docs:
                assert doc is not None
                doc["restart_generation"] += 1  # the reconciler kills processes and reopens SSH
                self._put("instances", doc)
                result.append(self.instance_api(doc, account, now))
            return result

    def instance_api(self, doc: dict[str, Any], account: Account | None, now: float) -> dict[str, Any]:
        spec = self.catalog.instance_types[doc["type"]]
        status = doc["status"]
        body: dict[str, Any] = {"id": doc["id"]}
        if doc.get("name") is not None:
            body["name"] = doc["name"]
        if doc["ip"]:
            body["ip"] = doc["ip"]
            # Loopback like `ip`: the same address reaches the instance from the host (there is no private network).
            body["private_ip"] = doc["ip"]
        body["status"] = status
        body["ssh_key_names"] = [doc["ssh_key_name"]]
        body["file_system_names"] = [m["name"] for m in doc["mounts"]]
        if doc["mounts"]:  # omitted when nothing is mounted, as live (../shared/lambda-cloud/NOTES.md §3.6)
            body["file_system_mounts"] = [
                {"mount_point": m["mount_point"], "file_system_id": m["file_system_id"]} for m in doc["mounts"]
            ]
        body["region"] = self.catalog.region_api(doc["region"])
        body["instance_type"] = spec.to_api()
        if doc["hostname"] or doc["ip"]:
            body["hostname"] = doc["hostname"] or doc["ip"]
        body["jupyter_token"] = doc["jupyter_token"]
        body["jupyter_url"] = f"https://jupyter-{doc['jupyter_host']}.lambdaspaces.com/?token={doc['jupyter_token']}"
        body["actions"] = self._actions(doc, now)
        body["tags"] = doc["tags"]
        if doc["firewall_ruleset_ids"]:
            body["firewall_rulesets"] = [{"id": r} for r in doc["firewall_ruleset_ids"]]
        body["is_reserved"] = False
        if account is not None:
            body["workspace_id"] = account.workspace_id
        if doc["ssh_port"] and status in RUNNING_STATUSES:
            body["ssh_port"] = doc["ssh_port"]  # emulator-only: clients default to 22 when it is absent
        return body

    def _actions(self, doc: dict[str, Any], now: float) -> dict[str, Any]:
        status = doc["status"]
        names = ("migrate", "rebuild", "restart", "cold_reboot", "terminate")
        if status in RUNNING_STATUSES:
            return {n: {"available": True} for n in names}
        if status == "booting":
            blocked = {
                "available": False,
                "reason_code": "vm-has-not-launched",
                "reason_description": "The instance has not launched yet.",
            }
            actions = {n: dict(blocked) for n in names}
            if now - doc["launched_at"] >= self.scaled(self.catalog.lifecycle.terminate_available_seconds):
                actions["terminate"] = {"available": True}
            return actions
        if status == "preempted":
            actions = {
                n: {"available": False, "reason_code": "vm-has-not-launched", "reason_description": "Preempted."}
                for n in names
            }
            actions["terminate"] = {"available": True}
            return actions
        blocked = {
            "available": False,
            "reason_code": "vm-is-terminating",
            "reason_description": "The instance is terminating.",
        }
        return {n: dict(blocked) for n in names}

    # ----------------------------------------------------------------- lifecycle (reconciler side)
    def tick(self, now: float) -> None:
        """Apply the time-driven transitions that need no SSH endpoint."""
        lifecycle = self.catalog.lifecycle
        with self._lock:
            for doc in self._all("instances"):
                spec = self.catalog.instance_types[doc["type"]]
                changed = False
                if (
                    doc["status"] == "booting"
                    and not doc["ip"]
                    and doc["hang_boot"] != "no-ip"
                    and (doc.get("boot_now") or now - doc["launched_at"] >= self.scaled(spec.ip_seconds))
                ):
                    doc["ip"] = self._allocate_ip()
                    changed = True
                if doc["status"] == "terminating" and now - doc["terminating_at"] >= self.scaled(
                    lifecycle.terminating_seconds
                ):
                    doc["status"] = "terminated"
                    doc["terminated_at"] = now
                    changed = True
                if doc["status"] == "terminated" and now - doc["terminated_at"] >= self.scaled(
                    lifecycle.terminated_retention_seconds
                ):
                    self._delete("instances", doc["id"])
                    continue
                if changed:
                    self._put("instances", doc)

    def _allocate_ip(self) -> str:
        counter = int(self._meta("ip_counter") or 0)
        self._set_meta("ip_counter", str(counter + 1))
        # 127.77.0.2 upwards: all of 127/8 is loopback on Linux, so each instance gets its own address.
        return f"127.77.{(counter // 250) % 250}.{counter % 250 + 2}"

    def reconcile_view(self, now: float) -> list[ReconcileItem]:
        with self._lock:
            items = []
            for doc in self._all("instances"):
                spec = self.catalog.instance_types[doc["type"]]
                ready_due = (
                    doc["status"] == "booting"
                    and bool(doc["ip"])
                    and doc["hang_boot"] is None
                    and (doc.get("boot_now") or now - doc["launched_at"] >= self.scaled(spec.active_seconds))
                )
                items.append(
                    ReconcileItem(
                        doc["id"], doc["status"], doc["ip"], doc["ssh_port"], ready_due, doc["restart_generation"], doc
                    )
                )
            return items

    def mark_running(self, instance_id: str, port: int) -> None:
        """SSH endpoint is listening: a booting instance becomes active; a running one records its port."""
        with self._lock:
            doc = self._get("instances", None, instance_id)
            if doc is None:
                return
            if doc["status"] == "booting" and doc["hang_boot"] is None:
                doc["status"] = "active"
            doc["ssh_port"] = port
            self._put("instances", doc)

    # ----------------------------------------------------------------- control API
    def control_set_status(self, instance_id: str, status: str, now: float) -> dict[str, Any]:
        allowed = ("active", "unhealthy", "preempted")
        if status not in allowed:
            raise errors.invalid_parameters(f"status must be one of {allowed}")
        with self._lock:
            doc = self._get("instances", None, instance_id)
            if doc is None:
                raise errors.instance_not_found()
            if doc["status"] in ("terminating", "terminated"):
                raise errors.conflict()
            if status == "active" and doc["status"] == "booting":
                doc["hang_boot"] = None
                doc["boot_now"] = True  # skip the rest of the boot clock
            elif status == "active" and doc["status"] == "preempted":
                raise errors.conflict()
            else:
                doc["status"] = status
            self._put("instances", doc)
            return self.instance_api(doc, None, now)

    def control_hang_boot(self, instance_id: str, stage: str | None) -> None:
        if stage not in (None, "no-ip", "ip"):
            raise errors.invalid_parameters("stage must be 'no-ip', 'ip' or null")
        with self._lock:
            doc = self._get("instances", None, instance_id)
            if doc is None:
                raise errors.instance_not_found()
            doc["hang_boot"] = stage
            self._put("instances", doc)

    def instance_doc(self, instance_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._get("instances", None, instance_id)

    def all_instance_docs(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._all("instances")

    def reset(self) -> None:
        """Forget every resource and capacity change; accounts and keys stay valid."""
        with self._lock:
            for table in _TABLES + ("capacity",):
                self._db.execute(f"DELETE FROM {table}")
            self._db.execute("DELETE FROM meta WHERE key LIKE 'global_rules:%'")

    # ----------------------------------------------------------------- firewall
    def global_rules(self, account: Account) -> list[dict[str, Any]]:
        with self._lock:
            raw = self._meta(f"global_rules:{account.id}")
            return json.loads(raw) if raw is not None else [dict(r) for r in DEFAULT_GLOBAL_RULES]

    def set_global_rules(self, account: Account, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:
            self._set_meta(f"global_rules:{account.id}", json.dumps(rules))
            return rules

    def list_rulesets(self, account: Account) -> list[dict[str, Any]]:
        with self._lock:
            return [self._ruleset_api(r) for r in self._all("rulesets", account.id)]

    def get_ruleset(self, account: Account, ruleset_id: str) -> dict[str, Any]:
        with self._lock:
            doc = self._get("rulesets", account.id, ruleset_id)
            if doc is None:
                raise errors.ruleset_not_found()
            return self._ruleset_api(doc)

    def create_ruleset(self, account: Account, name: str, region: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            if region not in self.catalog.regions:
                raise errors.invalid_parameters(f"Region {region} does not exist", "Pick a region from GET /regions.")
            doc = {
                "id": _new_id(),
                "account_id": account.id,
                "name": name,
                "region": region,
                "rules": rules,
                "created": time.time(),
            }
            self._put("rulesets", doc)
            return self._ruleset_api(doc)

    def update_ruleset(
        self, account: Account, ruleset_id: str, name: str | None, rules: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        with self._lock:
            doc = self._get("rulesets", account.id, ruleset_id)
            if doc is None:
                raise errors.ruleset_not_found()
            if name is not None:
                doc["name"] = name
            if rules is not None:
                doc["rules"] = rules
            self._put("rulesets", doc)
            return self._ruleset_api(doc)

    def delete_ruleset(self, account: Account, ruleset_id: str) -> None:
        with self._lock:
            doc = self._get("rulesets", account.id, ruleset_id)
            if doc is None:
                raise errors.ruleset_not_found()
            if self._ruleset_instance_ids(ruleset_id):
                raise errors.ApiError(
                    400,
                    "firewall-rulesets/firewall-ruleset-in-use",
                    "Firewall ruleset is in use by one or more instances.",
                    "Terminate all instances that are using the ruleset before deleting it.",
                )
            self._delete("rulesets", ruleset_id)

    def _ruleset_instance_ids(self, ruleset_id: str) -> list[str]:
        return [
            i["id"]
            for i in self._all("instances")
            if ruleset_id in i["firewall_ruleset_ids"] and i["status"] in LIVE_STATUSES + ("preempted",)
        ]

    def _ruleset_api(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": doc["id"],
            "name": doc["name"],
            "region": self.catalog.region_api(doc["region"]),
            "rules": doc["rules"],
            "created": _now_iso(doc["created"]),
            "instance_ids": self._ruleset_instance_ids(doc["id"]),
        }

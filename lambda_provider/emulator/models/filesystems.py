"""Filesystems: create in a region, list, delete (refused while an instance holds one)."""

from __future__ import annotations

import time
from typing import Any

from .. import errors
from ..catalog import Catalog
from ..store import Store, new_id
from .accounts import Account
from .statuses import HOLDING_STATUSES


class Filesystems:
    def __init__(self, store: Store, catalog: Catalog) -> None:
        self._store = store
        self._catalog = catalog

    def list(self, account: Account) -> list[dict[str, Any]]:
        with self._store.lock:
            return self._store.all("filesystems", account.id)

    def create(self, account: Account, name: str, region: str) -> dict[str, Any]:
        with self._store.lock:
            if region not in self._catalog.regions:
                raise errors.invalid_parameters(f"Region {region} does not exist", "Pick a region from GET /regions.")
            existing = self._store.all("filesystems", account.id)
            if any(fs["name"] == name for fs in existing):
                raise errors.ApiError(
                    400, "global/duplicate", f"A filesystem named '{name}' already exists.", "Choose another name."
                )
            if len(existing) >= self._catalog.filesystems_per_account:
                raise errors.quota_exceeded()
            doc = {"id": new_id(), "account_id": account.id, "name": name, "region": region, "created": time.time()}
            self._store.put("filesystems", doc)
            return doc

    def delete(self, account: Account, fs_id: str) -> dict[str, Any]:
        with self._store.lock:
            fs = self._store.get("filesystems", account.id, fs_id)
            if fs is None:
                raise errors.filesystem_not_found()
            if self.in_use(fs_id):
                # `terminating` counts as in use (../shared/lambda-cloud/NOTES.md §3.6): callers must retry after
                # termination.
                raise errors.ApiError(
                    400,
                    "filesystems/filesystem-in-use",
                    "Filesystem is in use by one or more instances.",
                    "Terminate the instances using the filesystem (and wait for `terminated`), then retry.",
                )
            self._store.delete("filesystems", fs_id)
            return fs

    def in_use(self, fs_id: str) -> bool:
        with self._store.lock:
            return any(
                fs_id in i["file_system_ids"] and i["status"] in HOLDING_STATUSES for i in self._store.all("instances")
            )

    def resolve_mounts(
        self, account: Account, region: str, names: list[str], requested: list[dict[str, str]]
    ) -> list[dict[str, str]]:
        """Launch: the mounts of `file_system_names` (default paths) and `file_system_mounts` (custom paths), all in
        `region`; 400 object-does-not-exist with the live text otherwise."""
        filesystems = self.list(account)
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
        for fs_name in names:
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

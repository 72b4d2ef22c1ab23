"""Filesystems. Note the two spellings: list at `/file-systems`, create/delete at `/filesystems`."""

from __future__ import annotations

from lambda_provider.client.models import Filesystem
from lambda_provider.client.transport import Transport


class FilesystemsClient:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self) -> list[Filesystem]:
        data = self._t.request("GET", "/file-systems")
        return [Filesystem.from_api(r) for r in data if isinstance(r, dict)] if isinstance(data, list) else []

    def get_by_name(self, name: str) -> Filesystem | None:
        return next((f for f in self.list() if f.name == name), None)

    def get(self, filesystem_id: str) -> Filesystem | None:
        return next((f for f in self.list() if f.id == filesystem_id), None)

    def create(self, name: str, region: str) -> Filesystem:
        data = self._t.request("POST", "/filesystems", body={"name": name, "region": region}, idempotent=False)
        return Filesystem.from_api(data)

    def delete(self, filesystem_id: str) -> list[str]:
        data = self._t.request("DELETE", f"/filesystems/{filesystem_id}")
        ids = data.get("deleted_ids") if isinstance(data, dict) else None
        return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []

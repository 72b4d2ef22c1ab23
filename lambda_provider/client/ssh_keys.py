"""`/ssh-keys`: list, add (with a public key, or server-generated pair), delete."""

from __future__ import annotations

from typing import Any

from lambda_provider.client.models import SshKey
from lambda_provider.client.transport import Transport


class SshKeysClient:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self) -> list[SshKey]:
        data = self._t.request("GET", "/ssh-keys")
        return [SshKey.from_api(r) for r in data if isinstance(r, dict)] if isinstance(data, list) else []

    def get_by_name(self, name: str) -> SshKey | None:
        return next((k for k in self.list() if k.name == name), None)

    def create(self, name: str, public_key: str | None = None) -> SshKey:
        body: dict[str, Any] = {"name": name}
        if public_key:
            body["public_key"] = public_key
        return SshKey.from_api(self._t.request("POST", "/ssh-keys", body=body, idempotent=False))

    def delete(self, key_id: str) -> None:
        self._t.request("DELETE", f"/ssh-keys/{key_id}")

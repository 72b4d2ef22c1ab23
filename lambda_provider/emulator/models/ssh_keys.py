"""SSH keys: add (uploaded, or generated server-side with the private key returned once), list, delete."""

from __future__ import annotations

from typing import Any

import asyncssh

from .. import errors
from ..catalog import Catalog
from ..store import Store, new_id
from .accounts import Account
from .statuses import HOLDING_STATUSES


class SshKeys:
    def __init__(self, store: Store, catalog: Catalog) -> None:
        self._store = store
        self._catalog = catalog

    def list(self, account: Account) -> list[dict[str, Any]]:
        with self._store.lock:
            return self._store.all("ssh_keys", account.id)

    def by_name(self, account: Account, name: str) -> dict[str, Any] | None:
        with self._store.lock:
            return next((k for k in self._store.all("ssh_keys", account.id) if k["name"] == name), None)

    def add(self, account: Account, name: str, public_key: str | None) -> tuple[dict[str, Any], str | None]:
        """The stored key and, when `public_key` is None, the generated private key (PEM; not kept)."""
        private_pem = None
        if public_key is None:
            # Server-side generation returns an RSA PEM private key, as the spec's example
            # (../shared/lambda-cloud/NOTES.md §3.5).
            key = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
            private_pem = key.export_private_key("pkcs1-pem").decode()
            public_key = key.export_public_key("openssh").decode().strip()
        else:
            public_key = public_key.strip()
            try:
                asyncssh.import_public_key(public_key)
            except (asyncssh.KeyImportError, ValueError):
                raise errors.invalid_parameters(
                    "Invalid public key.", "Send an OpenSSH public key line such as 'ssh-ed25519 AAAA... comment'."
                ) from None
        with self._store.lock:
            existing = self._store.all("ssh_keys", account.id)
            if any(k["name"] == name for k in existing):
                # Live text contains "name must be unique" (../shared/lambda-cloud/NOTES.md §3.5); code UNCONFIRMED,
                # the spec allows only invalid-parameters on this endpoint.
                raise errors.invalid_parameters(
                    "SSH key name must be unique.", "Choose another name or delete the existing key first."
                )
            if len(existing) >= self._catalog.ssh_keys_per_account:
                raise errors.invalid_parameters("SSH key limit reached.", "Delete unused SSH keys.")
            doc = {"id": new_id(), "account_id": account.id, "name": name, "public_key": public_key}
            self._store.put("ssh_keys", doc)
            return doc, private_pem

    def delete(self, account: Account, key_id: str) -> None:
        with self._store.lock:
            key = self._store.get("ssh_keys", account.id, key_id)
            if key is None:
                raise errors.ssh_key_not_found()
            in_use = any(
                i["ssh_key_name"] == key["name"] and i["status"] in HOLDING_STATUSES
                for i in self._store.all("instances", account.id)
            )
            if in_use:
                # Live: HTTP 400 "Key is currently in use, cannot delete" (../shared/lambda-cloud/NOTES.md §3.5); code
                # not captured live, the spec allows only invalid-parameters here.
                raise errors.invalid_parameters(
                    "Key is currently in use, cannot delete", "Terminate the instances using this key first."
                )
            self._store.delete("ssh_keys", key_id)

"""Accounts and their API keys: the start-up account (stable key per data dir) and extra ones for tests."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from ..store import Store, new_id


@dataclass(frozen=True)
class Account:
    id: str
    workspace_id: str
    user_id: str
    email: str


def _new_key() -> str:
    return f"secret_emulator_{secrets.token_hex(16)}.{secrets.token_hex(16)}"


class Accounts:
    def __init__(self, store: Store) -> None:
        self._store = store

    def ensure_default(self, api_key: str | None) -> str:
        """Return the API key printed at start-up: `api_key` if given, else the data dir's stable default key."""
        store = self._store
        with store.lock:
            account_id = store.meta("default_account")
            if account_id is None:
                account_id = self._create()
                store.set_meta("default_account", account_id)
            key = api_key or store.meta("default_api_key")
            if key is None:
                key = _new_key()
                store.set_meta("default_api_key", key)
            store.execute("INSERT OR REPLACE INTO api_keys (key, account_id) VALUES (?, ?)", (key, account_id))
            return key

    def _create(self) -> str:
        account = {"id": new_id(), "workspace_id": new_id(), "user_id": new_id()}
        account["email"] = f"user-{account['user_id'][:8]}@emulator.invalid"
        self._store.execute("INSERT INTO accounts (id, doc) VALUES (?, ?)", (account["id"], json.dumps(account)))
        return account["id"]

    def create(self) -> tuple[str, str]:
        """A second account with its own key (for tests of per-account isolation and rate limits)."""
        with self._store.lock:
            account_id = self._create()
            key = _new_key()
            self._store.execute("INSERT INTO api_keys (key, account_id) VALUES (?, ?)", (key, account_id))
            return account_id, key

    def for_key(self, key: str) -> Account | None:
        with self._store.lock:
            row = self._store.execute(
                "SELECT a.doc FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.key=?", (key,)
            ).fetchone()
            return Account(**json.loads(row[0])) if row else None

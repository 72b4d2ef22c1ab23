"""The one store under every resource module: SQLite tables of JSON documents, a meta table, one lock.

Every public method of a resource module (models/) holds `store.lock` for the whole operation, so HTTP threads and
the lifecycle reconciler never interleave inside one (launch checks capacity and inserts atomically). Each
mutation is committed at once (autocommit), so a killed emulator loses nothing that was acknowledged.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

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
# Tables of per-account documents (id, account_id, seq = creation order, doc = JSON).
DOCUMENT_TABLES = ("ssh_keys", "filesystems", "instances", "rulesets")


def new_id() -> str:
    return uuid.uuid4().hex


class Store:
    def __init__(self, db_path: Path) -> None:
        self.lock = threading.RLock()
        self._db = sqlite3.connect(str(db_path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self.lock:
            self._db.close()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, params)

    # ------------------------------------------------------------------ meta
    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def next_counter(self, key: str) -> int:
        """0, 1, 2, ... per key, persisted."""
        value = int(self.meta(key) or 0)
        self.set_meta(key, str(value + 1))
        return value

    # ------------------------------------------------------------------ documents
    def put(self, table: str, doc: dict[str, Any]) -> None:
        row = self._db.execute(f"SELECT seq FROM {table} WHERE id=?", (doc["id"],)).fetchone()
        seq = row[0] if row else self.next_counter("seq") + 1
        self._db.execute(
            f"INSERT OR REPLACE INTO {table} (id, account_id, seq, doc) VALUES (?, ?, ?, ?)",
            (doc["id"], doc["account_id"], seq, json.dumps(doc)),
        )

    def get(self, table: str, account_id: str | None, item_id: str) -> dict[str, Any] | None:
        """One document by id; `account_id` None looks across accounts (control API, reconciler)."""
        if account_id is None:
            row = self._db.execute(f"SELECT doc FROM {table} WHERE id=?", (item_id,)).fetchone()
        else:
            row = self._db.execute(
                f"SELECT doc FROM {table} WHERE id=? AND account_id=?", (item_id, account_id)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def all(self, table: str, account_id: str | None = None) -> list[dict[str, Any]]:
        """Documents in creation order; `account_id` None: every account's."""
        if account_id is None:
            rows = self._db.execute(f"SELECT doc FROM {table} ORDER BY seq").fetchall()
        else:
            rows = self._db.execute(
                f"SELECT doc FROM {table} WHERE account_id=? ORDER BY seq", (account_id,)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def delete(self, table: str, item_id: str) -> None:
        self._db.execute(f"DELETE FROM {table} WHERE id=?", (item_id,))

    def reset(self) -> None:
        """Forget every resource, capacity change and global rule set; accounts and keys stay valid."""
        with self.lock:
            for table in (*DOCUMENT_TABLES, "capacity"):
                self._db.execute(f"DELETE FROM {table}")
            self._db.execute("DELETE FROM meta WHERE key LIKE 'global_rules:%'")

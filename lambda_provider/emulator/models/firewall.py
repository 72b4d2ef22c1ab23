"""Firewall: the account's global rules and its per-region rulesets (stored and validated, not enforced)."""

from __future__ import annotations

import json
import time
from typing import Any

from .. import errors
from ..catalog import Catalog
from ..store import Store, new_id
from .accounts import Account
from .statuses import HOLDING_STATUSES

DEFAULT_GLOBAL_RULES = [
    {
        "protocol": "tcp",
        "port_range": [22, 22],
        "source_network": "0.0.0.0/0",
        "description": "Allow SSH from anywhere",
    },
    {"protocol": "icmp", "source_network": "0.0.0.0/0", "description": "Allow ICMP from anywhere"},
]


class Firewall:
    def __init__(self, store: Store, catalog: Catalog) -> None:
        self._store = store
        self._catalog = catalog

    # ------------------------------------------------------------------ global rules
    def global_rules(self, account: Account) -> list[dict[str, Any]]:
        with self._store.lock:
            raw = self._store.meta(f"global_rules:{account.id}")
            return json.loads(raw) if raw is not None else [dict(r) for r in DEFAULT_GLOBAL_RULES]

    def set_global_rules(self, account: Account, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._store.lock:
            self._store.set_meta(f"global_rules:{account.id}", json.dumps(rules))
            return rules

    # ------------------------------------------------------------------ rulesets
    def list(self, account: Account) -> list[dict[str, Any]]:
        with self._store.lock:
            return self._store.all("rulesets", account.id)

    def get(self, account: Account, ruleset_id: str) -> dict[str, Any]:
        with self._store.lock:
            doc = self._store.get("rulesets", account.id, ruleset_id)
            if doc is None:
                raise errors.ruleset_not_found()
            return doc

    def create(self, account: Account, name: str, region: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        with self._store.lock:
            if region not in self._catalog.regions:
                raise errors.invalid_parameters(f"Region {region} does not exist", "Pick a region from GET /regions.")
            doc = {
                "id": new_id(),
                "account_id": account.id,
                "name": name,
                "region": region,
                "rules": rules,
                "created": time.time(),
            }
            self._store.put("rulesets", doc)
            return doc

    def update(
        self, account: Account, ruleset_id: str, name: str | None, rules: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        with self._store.lock:
            doc = self.get(account, ruleset_id)
            if name is not None:
                doc["name"] = name
            if rules is not None:
                doc["rules"] = rules
            self._store.put("rulesets", doc)
            return doc

    def delete(self, account: Account, ruleset_id: str) -> None:
        with self._store.lock:
            self.get(account, ruleset_id)
            if self.instance_ids(ruleset_id):
                raise errors.ApiError(
                    400,
                    "firewall-rulesets/firewall-ruleset-in-use",
                    "Firewall ruleset is in use by one or more instances.",
                    "Terminate all instances that are using the ruleset before deleting it.",
                )
            self._store.delete("rulesets", ruleset_id)

    def instance_ids(self, ruleset_id: str) -> list[str]:
        """The instances that hold the ruleset (a record's `instance_ids`)."""
        with self._store.lock:
            return [
                i["id"]
                for i in self._store.all("instances")
                if ruleset_id in i["firewall_ruleset_ids"] and i["status"] in HOLDING_STATUSES
            ]

    def resolve(self, account: Account, region: str, ids: list[str]) -> list[str]:
        """Launch: the requested rulesets, each in the launch region."""
        with self._store.lock:
            for ruleset_id in ids:
                ruleset = self._store.get("rulesets", account.id, ruleset_id)
                if ruleset is None or ruleset["region"] != region:
                    raise errors.launch_resource_not_found(
                        f"Firewall ruleset '{ruleset_id}' does not exist in region '{region}'.",
                        "Create the ruleset in the launch region.",
                    )
            return list(ids)

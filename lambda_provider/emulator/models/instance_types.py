"""Capacity per (instance type, region): the catalogue's totals, changed at runtime through the control API."""

from __future__ import annotations

from ..catalog import Catalog
from ..store import Store
from .statuses import LIVE_STATUSES


class InstanceTypes:
    def __init__(self, store: Store, catalog: Catalog) -> None:
        self._store = store
        self._catalog = catalog

    def _total(self, type_name: str, region: str) -> int:
        row = self._store.execute(
            "SELECT total FROM capacity WHERE type=? AND region=?", (type_name, region)
        ).fetchone()
        if row:
            return int(row[0])
        return self._catalog.instance_types[type_name].capacity.get(region, 0)

    def _used(self) -> dict[tuple[str, str], int]:
        used: dict[tuple[str, str], int] = {}
        for i in self._store.all("instances"):
            if i["status"] in LIVE_STATUSES:
                used[(i["type"], i["region"])] = used.get((i["type"], i["region"]), 0) + 1
        return used

    def available(self, type_name: str, region: str) -> int:
        """How many more instances of the type the region can launch now (all accounts together)."""
        with self._store.lock:
            return max(0, self._total(type_name, region) - self._used().get((type_name, region), 0))

    def set_available(self, type_name: str, region: str, available: int) -> None:
        """Make exactly `available` more instances launchable (the running ones keep their slots)."""
        with self._store.lock:
            total = self._used().get((type_name, region), 0) + max(0, available)
            self._store.execute(
                "INSERT OR REPLACE INTO capacity (type, region, total) VALUES (?, ?, ?)", (type_name, region, total)
            )

    def regions_with_capacity(self) -> dict[str, list[str]]:
        """{type name: [regions with capacity left]}, in catalogue order."""
        with self._store.lock:
            used = self._used()
            totals = {
                (t, r): n for t, r, n in self._store.execute("SELECT type, region, total FROM capacity").fetchall()
            }
            result = {}
            for name, spec in self._catalog.instance_types.items():
                result[name] = [
                    region
                    for region in self._catalog.regions
                    if totals.get((name, region), spec.capacity.get(region, 0)) - used.get((name, region), 0) > 0
                ]
            return result

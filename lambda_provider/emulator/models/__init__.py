"""State of the emulated cloud, as moto splits a backend: one module per resource over one store (store.py).

`CloudState` holds them: `accounts`, `ssh_keys`, `filesystems`, `instance_types` (capacity), `images`,
`firewall`, `instances`. They return stored documents; the API's record shapes are built next to the routes
(responses/).
"""

from __future__ import annotations

from pathlib import Path

from ..catalog import Catalog
from ..store import Store
from .accounts import Account, Accounts
from .filesystems import Filesystems
from .firewall import Firewall
from .images import Images
from .instance_types import InstanceTypes
from .instances import Instances, ReconcileItem, Timings
from .ssh_keys import SshKeys
from .statuses import HOLDING_STATUSES, LIVE_STATUSES, RUNNING_STATUSES

__all__ = [
    "HOLDING_STATUSES",
    "LIVE_STATUSES",
    "RUNNING_STATUSES",
    "Account",
    "CloudState",
    "ReconcileItem",
    "Timings",
]


class CloudState:
    def __init__(
        self, db_path: Path, catalog: Catalog, time_scale: float, terminated_retention_seconds: float | None = None
    ) -> None:
        """`terminated_retention_seconds` (catalogue seconds, x time_scale) overrides the catalogue's
        lifecycle.terminated_retention_seconds: how long a terminated record stays listed and GET-able."""
        lifecycle = catalog.lifecycle
        retention = lifecycle.terminated_retention_seconds
        if terminated_retention_seconds is not None:
            retention = terminated_retention_seconds
        self.catalog = catalog
        self.timings = Timings(
            time_scale=time_scale,
            terminate_available=lifecycle.terminate_available_seconds * time_scale,
            terminating=lifecycle.terminating_seconds * time_scale,
            terminated_retention=retention * time_scale,
        )
        self.store = Store(db_path)
        self.accounts = Accounts(self.store)
        self.ssh_keys = SshKeys(self.store, catalog)
        self.filesystems = Filesystems(self.store, catalog)
        self.instance_types = InstanceTypes(self.store, catalog)
        self.images = Images(catalog)
        self.firewall = Firewall(self.store, catalog)
        self.instances = Instances(
            self.store,
            catalog,
            self.timings,
            ssh_keys=self.ssh_keys,
            filesystems=self.filesystems,
            capacity=self.instance_types,
            images=self.images,
            firewall=self.firewall,
        )

    def reset(self) -> None:
        self.store.reset()

    def close(self) -> None:
        self.store.close()

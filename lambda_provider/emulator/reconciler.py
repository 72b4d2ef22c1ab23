"""The lifecycle reconciler: every RECONCILE_INTERVAL_SECONDS (or when woken), apply the clock's transitions and
make the machines match the records: start an instance's SSH endpoint when it is due (then it is `active`), kill
its processes and close SSH on restart, preempt, terminate; wipe its disk once `terminated`; forget it when its
record is gone. Runs on the app's asyncio loop; no HTTP here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Callable

from .instance_fs import InstanceLayout
from .models import RUNNING_STATUSES, CloudState
from .processes import kill_instance_processes
from .ssh import SSHEndpoints

log = logging.getLogger("lambda_provider.emulator")

RECONCILE_INTERVAL_SECONDS = 0.02
KILL_GRACE_SECONDS = 0.3


class Reconciler:
    """Create it on the loop thread (its asyncio primitives belong to that loop)."""

    def __init__(
        self, state: CloudState, layout: InstanceLayout, ssh: SSHEndpoints, clock: Callable[[], float]
    ) -> None:
        self._state = state
        self._layout = layout
        self._ssh = ssh
        self._now = clock
        self._wake = asyncio.Event()
        self.lock = asyncio.Lock()  # held for one pass; reset takes it to stop everything in between passes
        self._killed: set[str] = set()
        self._wiped: set[str] = set()

    def wake(self) -> None:
        """Run a pass now (call on the loop thread)."""
        self._wake.set()

    def forget(self) -> None:
        self._killed.clear()
        self._wiped.clear()

    async def run_forever(self) -> None:
        while True:
            try:
                async with self.lock:
                    await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the clock running whatever one instance does
                log.error("reconcile failed:\n%s", traceback.format_exc())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=RECONCILE_INTERVAL_SECONDS)
            self._wake.clear()

    async def _stop_machine(self, instance_id: str) -> None:
        groups = await self._ssh.stop(instance_id)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, kill_instance_processes, instance_id, groups, KILL_GRACE_SECONDS)

    async def run_once(self) -> None:
        now = self._now()
        instances = self._state.instances
        instances.tick(now)
        seen = set()
        for item in instances.reconcile_view(now):
            seen.add(item.id)
            spec = self._state.catalog.instance_types[item.doc["type"]]
            endpoint = self._ssh.endpoints.get(item.id)
            if item.status in RUNNING_STATUSES or item.ready_due:
                if endpoint is not None and endpoint.generation != item.restart_generation:
                    await self._stop_machine(item.id)  # restart: processes die, SSH comes back
                    endpoint = None
                if endpoint is None:
                    self._layout.prepare_instance(item.doc, spec)
                    try:
                        endpoint = await self._ssh.start(item.doc, spec, item.ssh_port)
                    except OSError as exc:
                        log.error("%s", exc)
                        continue
                    instances.mark_running(item.id, endpoint.port)
                elif item.ssh_port != endpoint.port:
                    instances.mark_running(item.id, endpoint.port)
                continue
            if endpoint is not None or (
                item.status in ("terminating", "terminated", "preempted") and item.id not in self._killed
            ):
                await self._stop_machine(item.id)
                self._killed.add(item.id)
            if item.status == "terminated" and item.id not in self._wiped:
                self._layout.wipe_instance_disk(item.id)
                self._wiped.add(item.id)
        for gone in (self._wiped | self._killed) - seen:
            self._layout.delete_instance(gone)
            self._wiped.discard(gone)
            self._killed.discard(gone)

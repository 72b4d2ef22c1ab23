"""One emulator process's state and machinery, apart from HTTP: the catalogue, the cloud state (models/), the
instance layout on disk, rate limits, faults, and an asyncio thread that runs the lifecycle reconciler and the
per-instance SSH endpoints. httpd.py serves it."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import shutil
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from . import errors
from .catalog import Catalog
from .faults import FaultInjector
from .instance_fs import InstanceLayout
from .models import Account, CloudState
from .processes import kill_instance_processes
from .ratelimit import RateLimiter
from .reconciler import KILL_GRACE_SECONDS, Reconciler
from .ssh import SSHEndpoints


class EmulatorApp:
    """Everything one emulator process holds; HTTP threads and the asyncio thread share it."""

    def __init__(
        self,
        data_dir: Path,
        catalog: Catalog,
        time_scale: float,
        api_key: str | None,
        rate_limits: bool,
        terminated_retention_seconds: float | None = None,
    ) -> None:
        """`terminated_retention_seconds`: catalogue seconds (x time_scale) a terminated record stays listed and
        GET-able before it is gone (404); None keeps the catalogue's lifecycle.terminated_retention_seconds."""
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0 (1.0 = real Lambda timings, 0.01 = 100x faster)")
        if terminated_retention_seconds is not None and terminated_retention_seconds < 0:
            raise ValueError("terminated_retention_seconds must be >= 0 (0 = gone as soon as terminated)")
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.catalog = catalog
        self.time_scale = time_scale
        self.layout = InstanceLayout(data_dir)
        self.state = CloudState(data_dir / "state.sqlite3", catalog, time_scale, terminated_retention_seconds)
        self.api_key = self.state.accounts.ensure_default(api_key)
        self.limiter = RateLimiter(catalog.rate_limits, time_scale)
        self.limiter.enabled = rate_limits and catalog.rate_limits.enabled
        self.faults = FaultInjector(catalog.faults)
        self.hang_new_boots: str | None = None
        self.api_url = ""
        # API requests served (429s included) per kind, for benchmarks (GET /_emulator/stats); control calls excluded.
        self.stats: dict[str, int] = {"requests": 0, "throttled": 0, "launches": 0}
        self._stats_lock = threading.Lock()
        self._ssh = SSHEndpoints(self.layout)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emulator-loop", daemon=True)
        self._reconciler: Reconciler | None = None
        self._reconcile_task: asyncio.Task[None] | None = None

    def count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1

    def stats_snapshot(self) -> dict[str, int]:
        with self._stats_lock:
            return dict(self.stats)

    @staticmethod
    def now() -> float:
        return time.time()

    # ------------------------------------------------------------------ requests
    def authenticate(self, header: str | None) -> Account:
        key = _api_key_from_header(header)
        account = self.state.accounts.for_key(key) if key else None
        if account is None and header and header.startswith("Basic "):
            # The securityScheme also allows the raw key after "Basic " (../shared/lambda-cloud/NOTES.md §1).
            account = self.state.accounts.for_key(header[len("Basic ") :].strip())
        if account is None:
            raise errors.invalid_api_key()
        return account

    def wake_reconciler(self) -> None:
        if self._reconciler is not None:
            self._loop.call_soon_threadsafe(self._reconciler.wake)

    def reset(self) -> None:
        self._run(self._reset())
        self.faults.clear()
        for rule in self.catalog.faults:
            self.faults.add(rule)
        self.limiter.reset()
        self.hang_new_boots = None

    # ------------------------------------------------------------------ loop thread
    def start(self) -> None:
        self._thread.start()
        self._run(self._startup())

    def stop(self) -> None:
        if self._thread.is_alive():
            self._run(self._shutdown(), timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self.state.close()

    def _run(self, coro: Any, timeout: float = 60) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=timeout)

    async def _startup(self) -> None:
        self._reconciler = Reconciler(self.state, self.layout, self._ssh, self.now)
        known = {doc["id"] for doc in self.state.instances.all_docs()}
        instances_dir = self.data_dir / "instances"
        if instances_dir.is_dir():
            for child in instances_dir.iterdir():
                if child.name not in known:
                    shutil.rmtree(child, ignore_errors=True)
        self._reconcile_task = asyncio.get_running_loop().create_task(self._reconciler.run_forever())

    async def _shutdown(self) -> None:
        if self._reconcile_task is not None:
            self._reconcile_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconcile_task
        await self._stop_everything()

    async def _stop_everything(self) -> None:
        groups: dict[str, list[int]] = {}
        for instance_id in list(self._ssh.endpoints):
            groups[instance_id] = await self._ssh.stop(instance_id)
        ids = {doc["id"] for doc in self.state.instances.all_docs()} | set(groups)
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(
                loop.run_in_executor(None, kill_instance_processes, i, groups.get(i, []), KILL_GRACE_SECONDS)
                for i in ids
            )
        )

    async def _reset(self) -> None:
        assert self._reconciler is not None
        async with self._reconciler.lock:
            await self._stop_everything()
            self.state.reset()
            self._reconciler.forget()
            for sub in ("instances", "filesystems"):
                shutil.rmtree(self.data_dir / sub, ignore_errors=True)


def _api_key_from_header(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer":
        return token or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(token, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, _password = decoded.partition(":")
        return user or None
    return None

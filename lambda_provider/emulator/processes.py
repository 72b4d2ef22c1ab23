"""Find and kill every process of an emulated instance, including ones detached with nohup/setsid.

Every process an SSH session starts inherits LAMBDA_EMULATOR_INSTANCE_ID=<id> in its environment, so detached
descendants (new session, new process group, reparented to init) are still found through /proc/<pid>/environ.
Where /proc is missing (macOS) only the session process groups we started can be signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

INSTANCE_ENV = "LAMBDA_EMULATOR_INSTANCE_ID"


def instance_pids(instance_id: str) -> list[int]:
    marker = f"{INSTANCE_ENV}={instance_id}".encode()
    own = os.getpid()
    pids = []
    proc = Path("/proc")
    if not proc.is_dir():
        return pids
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def kill_instance_processes(instance_id: str, process_groups: list[int] | None = None, grace: float = 0.5) -> int:
    """SIGTERM everything of the instance, then SIGKILL what is left after `grace` seconds. Returns how many."""
    targets = set(instance_pids(instance_id))
    for pgid in process_groups or []:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGTERM)
    for pid in targets:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        remaining = set(instance_pids(instance_id))
        if not remaining:
            break
        time.sleep(0.05)
    # Repeat: a process may have forked between scans.
    for _ in range(3):
        remaining = instance_pids(instance_id)
        if not remaining:
            break
        targets.update(remaining)
        for pid in remaining:
            _signal(pid, signal.SIGKILL)
        time.sleep(0.02)
    for pgid in process_groups or []:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
    return len(targets)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, sig)

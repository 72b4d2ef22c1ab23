"""Running the engine through the Automation API: an engine that dies with its driver, the stale lock a killed
driver leaves (cleared with the engine's own `cancel`), and the error diagnostics of an update."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from lambda_provider.cli import workspace

SHIM = """#!{python}
# The pulumi engine for lambda-sae. This process execs nothing: it runs the engine as its child and, as a child
# subreaper, keeps every process the engine starts (language host, dynamic providers, which the engine puts in
# process groups of their own) under it. When its driver dies it kills them all: a SIGKILLed `lambda-sae up` leaves
# no engine and no provider running on its own (its lock is then stale, and the next `up` clears it).
import ctypes, os, signal, sys

REAL = {pulumi!r}
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
child = 0


def descendants():
    parent_of = {{}}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{{name}}/stat") as stat:
                    parent_of[int(name)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [os.getpid()]
    while frontier:
        parent = frontier.pop()
        kids = [pid for pid, ppid in parent_of.items() if ppid == parent]
        found += kids
        frontier += kids
    return found


def driver_gone(signum, frame):
    for _ in range(10):  # a process forked meanwhile reparents to us and is found on the next pass
        pids = descendants()
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
    os._exit(128 + signum)


def forward(signum, frame):
    if child:
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass


signal.signal(signal.SIGTERM, driver_gone)
signal.signal(signal.SIGHUP, driver_gone)
signal.signal(signal.SIGINT, forward)
try:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # SIGTERM to this process when the driver dies
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
except (OSError, AttributeError):
    pass  # not Linux: the engine outlives a killed driver, and its lock is cleared by the next `up`
if os.getppid() == 1:
    sys.exit("lambda-sae: the driver exited before the engine started")
child = os.fork()
if child == 0:
    os.execv(REAL, [REAL, *sys.argv[1:]])
while True:
    pid, status = os.waitpid(-1, 0)  # orphans of the engine's tree are reaped here too
    if pid == child:
        break
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def pulumi_command() -> auto.PulumiCommand:
    """The Automation API's command: the pinned `pulumi` through SHIM."""
    real = shutil.which("pulumi", path=workspace.toolchain_path())
    if real is None:
        raise workspace.WorkspaceError(
            "no `pulumi` CLI on PATH: run `make setup` (it writes .toolchain) or install Pulumi v3.259.0"
        )
    root = workspace.repo_root() / ".lambda-sae" / "engine"
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shim = root / "bin" / "pulumi"
    text = SHIM.format(python=sys.executable, pulumi=real)
    if not shim.is_file() or shim.read_text() != text:
        tmp = shim.with_suffix(f".{os.getpid()}")
        tmp.write_text(text)
        tmp.chmod(0o755)
        tmp.replace(shim)
    return auto.PulumiCommand(root=str(root), skip_version_check=True)


@dataclass(frozen=True)
class Lock:
    path: Path
    pid: int
    hostname: str
    timestamp: str

    @property
    def ours(self) -> bool:
        return self.hostname == socket.gethostname()

    @property
    def holder_alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def describe(self) -> str:
        when = self.timestamp
        with contextlib.suppress(ValueError):
            when = datetime.fromisoformat(self.timestamp.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S %Z")
        return f"pid {self.pid} on {self.hostname}, since {when}"


def locks(stack_name: str) -> list[Lock]:
    """The file backend's update locks on `stack_name` (none for other backends)."""
    url = workspace.backend_url()
    if not url.startswith("file://"):
        return []
    base = Path(url[len("file://") :]) / ".pulumi" / "locks"
    found = []
    for path in base.glob(f"**/{workspace.project_name()}/{stack_name}/*.json"):
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
            found.append(
                Lock(path, int(raw.get("pid", 0)), str(raw.get("hostname", "")), str(raw.get("timestamp", "")))
            )
        except (OSError, ValueError, TypeError):
            continue
    return found


def clear_stale_lock(stack: auto.Stack, stack_name: str, say: Any = print) -> bool:
    """Cancel the update a killed engine of this machine left locked. A live or foreign lock is left alone."""
    held = locks(stack_name)
    stale = [lock for lock in held if lock.ours and not lock.holder_alive]
    if not held or len(stale) != len(held):
        return False
    for lock in stale:
        say(
            f"stack {stack_name} was locked by an update that was killed ({lock.describe()}); clearing the lock "
            f"with the engine's cancel (`pulumi cancel --stack {stack_name}`)"
        )
    try:
        stack.cancel()
    except auto.errors.CommandError as exc:
        raise workspace.WorkspaceError(
            f"the engine's cancel did not clear the lock of stack {stack_name} ({str(exc).strip()[-300:]}): remove "
            f"{stale[0].path} by hand once no `pulumi` process of this stack is left"
        ) from None
    return True


def lock_advice(stack_name: str) -> str:
    held = locks(stack_name)
    live = [lock for lock in held if not lock.ours or lock.holder_alive]
    if live:
        return (
            f"another update of stack {stack_name} is running ({live[0].describe()}): wait for it to end; if it "
            f"was killed on another machine, `pulumi cancel --stack {stack_name}` clears its lock"
        )
    return f"the stack is locked: `pulumi cancel --stack {stack_name}` clears the lock"


@dataclass
class Diagnostics:
    """The error diagnostics of an operation, each with the resource it names."""

    errors: list[tuple[str, str]] = field(default_factory=list)  # (resource name or "", message)

    def record(self, event: auto.EngineEvent) -> None:
        diag = event.diagnostic_event
        if diag is None or diag.severity != "error":
            return
        message = diag.message.strip()
        if message:
            self.errors.append((urn_name(diag.urn or ""), message))

    def lines(self) -> list[str]:
        return [f"{name}: {message}" if name else message for name, message in self.errors]


def urn_name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] if urn else ""


def urn_type(urn: str) -> str:
    """The resource's own type (the last of the parent-type chain) of a URN."""
    parts = urn.split("::")
    return parts[2].rsplit("$", 1)[-1] if len(parts) >= 4 else ""

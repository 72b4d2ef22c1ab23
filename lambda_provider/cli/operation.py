"""One engine operation (up, preview, refresh, destroy) with what every verb shows around it: the stale lock
cleared, the live view (rich on a TTY, plain lines otherwise, Pulumi's own output with --verbose), the engine's
error messages and a non-zero exit when it failed."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from lambda_provider import progress
from lambda_provider.cli import engine, workspace
from lambda_provider.cli.view import INSTANCE, FleetView


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true", help="show Pulumi's own output (plan, progress, Outputs)")


def say(text: str) -> None:
    print(text, flush=True)


def warn(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Outcome:
    ok: bool
    result: Any = None
    errors: list[str] = field(default_factory=list)


def state_resources(stack: auto.Stack) -> list[dict[str, Any]]:
    try:
        return list((stack.export_stack().deployment or {}).get("resources") or [])
    except auto.errors.CommandError:
        return []


def created_times(resources: list[dict[str, Any]]) -> dict[str, float]:
    """Node name -> when the state first recorded its instance (the engine stamps `created`)."""
    return {node: created for node, created in tracked_instances(resources).values() if created is not None}


@contextlib.contextmanager
def progress_file(stack: auto.Stack, view: FleetView) -> Iterator[Path]:
    """A fresh progress file the engine's processes write to (LAMBDA_SAE_PROGRESS), tailed into the view."""
    path = workspace.repo_root() / ".lambda-sae" / f"progress-{stack.name}-{os.getpid()}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    env = dict(stack.workspace.env_vars or {})
    env[progress.ENV] = str(path)
    stack.workspace.env_vars = env
    stop = threading.Event()

    def tail() -> None:
        offset = 0
        while True:
            records, offset = progress.read_new(path, offset)
            for record in records:
                view.on_progress(record)
            if stop.wait(0.5) and not records:
                return

    thread = threading.Thread(target=tail, name="progress-tail", daemon=True)
    thread.start()
    try:
        yield path
    finally:
        stop.set()
        thread.join(timeout=5)
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def live_view(view: FleetView, enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    from rich.live import Live

    with Live(get_renderable=view.renderable, refresh_per_second=4, transient=False, redirect_stdout=False):
        yield


def run(stack: auto.Stack, view: FleetView, call: Callable[..., Any], *, verbose: bool) -> Outcome:
    """Run `call(on_event=..., on_output=...)` (a bound Stack method) with the view and the error report."""
    diagnostics = engine.Diagnostics()

    def on_event(event: auto.EngineEvent) -> None:
        diagnostics.record(event)
        view.on_event(event)

    interactive = sys.stdout.isatty() and not verbose
    if not interactive and not verbose:
        view.say = say
    kwargs: dict[str, Any] = {"on_event": on_event, "color": "never"}
    if verbose:
        kwargs["on_output"] = say
    with progress_file(stack, view), live_view(view, interactive):
        try:
            result = call(**kwargs)
        except auto.errors.ConcurrentUpdateError:
            return Outcome(False, errors=[engine.lock_advice(stack.name)])
        except auto.errors.CommandError as exc:
            errors = diagnostics.lines() or [_stderr_tail(exc)]
            return Outcome(False, errors=errors)
    return Outcome(not diagnostics.errors, result, diagnostics.lines())


def _stderr_tail(exc: auto.errors.CommandError) -> str:
    text = str(exc)
    marker = "stderr:"
    if marker in text:
        text = text.split(marker, 1)[1]
    return text.strip()[-3000:]


def report_failure(verb: str, stack_name: str, outcome: Outcome) -> int:
    warn(f"\nlambda-sae {verb} --stack {stack_name} failed:")
    for line in outcome.errors:
        warn("  " + line.replace("\n", "\n  "))
    warn(f"fix the cause above and run `lambda-sae {verb} --stack {stack_name}` again")
    return 1


def open_stack(name: str, *, create: bool) -> auto.Stack:
    """The passphrase rule first (nothing is created for a refused stack), then the emulator, then the stack."""
    workspace.environment(name)
    emulator = workspace.ensure_emulator(name)
    if emulator:
        say(f"emulator at {emulator.get('LAMBDA_API_URL')}")
    stack = workspace.stack(name, create=create)
    engine.clear_stale_lock(stack, name, say=say)
    return stack


def started(verb: str, name: str) -> None:
    say(f"lambda-sae {verb} --stack {name}")


def tracked_instances(resources: list[dict[str, Any]]) -> dict[str, tuple[str, float | None]]:
    """Instance id -> (node name, creation time in the state) for the stack's Instance resources."""
    tracked = {}
    for res in resources:
        if res.get("type") == INSTANCE and res.get("id"):
            created = None
            if res.get("created"):
                with contextlib.suppress(ValueError):
                    created = datetime.fromisoformat(str(res["created"]).replace("Z", "+00:00")).timestamp()
            tracked[str(res["id"])] = (engine.urn_name(res["urn"]), created)
    return tracked

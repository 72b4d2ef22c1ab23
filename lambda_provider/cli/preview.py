"""`lambda-sae preview`: what `up` would change, and the engine's errors (an over-budget plan fails here)."""

from __future__ import annotations

import argparse

from pulumi import automation as auto

from lambda_provider.cli import operation
from lambda_provider.cli.engine import urn_name, urn_type
from lambda_provider.cli.view import FleetView


class PlanView(FleetView):
    """Records the planned operations instead of node phases (nothing runs in a preview)."""

    def __init__(self) -> None:
        super().__init__()
        self.planned: list[str] = []

    def on_event(self, event: auto.EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre is not None and pre.metadata.op != auto.OpType.SAME:
            urn = pre.metadata.urn
            self.planned.append(f"  {pre.metadata.op.value:<8} {urn_name(urn)} ({urn_type(urn)})")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    operation.add_common_arguments(parser)


def changes_line(counts: dict[str, int]) -> str:
    shown = [f"{count} to {op}" for op, count in sorted(counts.items()) if op != "same" and count]
    unchanged = counts.get("same", 0)
    return ", ".join(shown or ["no changes"]) + (f", {unchanged} unchanged" if unchanged else "")


def run(args: argparse.Namespace) -> int:
    name = args.stack
    operation.started("preview", name)
    stack = operation.open_stack(name, create=True)
    view = PlanView()
    outcome = operation.run(stack, view, stack.preview, verbose=args.verbose)
    if not outcome.ok:
        return operation.report_failure("preview", name, outcome)
    for line in view.planned:
        operation.say(line)
    operation.say(f"preview: {changes_line({str(k): v for k, v in outcome.result.change_summary.items()})}")
    return 0

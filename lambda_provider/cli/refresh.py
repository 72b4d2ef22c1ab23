"""`lambda-sae refresh`: read every resource back from Lambda and the run back from the nodes into the state."""

from __future__ import annotations

import argparse
import functools

from lambda_provider.cli import operation
from lambda_provider.cli.preview import changes_line
from lambda_provider.cli.summary import summary_lines
from lambda_provider.cli.view import FleetView


def add_arguments(parser: argparse.ArgumentParser) -> None:
    operation.add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    name = args.stack
    operation.started("refresh", name)
    stack = operation.open_stack(name, create=False)
    # The program runs too, so the outputs (training state, crashed nodes) are rebuilt from what was read back.
    outcome = operation.run(
        stack, FleetView(), functools.partial(stack.refresh, run_program=True), verbose=args.verbose
    )
    if not outcome.ok:
        return operation.report_failure("refresh", name, outcome)
    changes = outcome.result.summary.resource_changes or {}
    operation.say(f"refresh: {changes_line({str(k): v for k, v in changes.items()})}")
    outputs = {key: value.value for key, value in stack.outputs().items()}
    for line in summary_lines(name, outputs):
        operation.say(line)
    return 0

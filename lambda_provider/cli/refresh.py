"""`lambda-sae refresh`: read every resource back from Lambda into the state."""

from __future__ import annotations

import argparse

from lambda_provider.cli import operation
from lambda_provider.cli.preview import changes_line
from lambda_provider.cli.view import FleetView


def add_arguments(parser: argparse.ArgumentParser) -> None:
    operation.add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    name = args.stack
    operation.started("refresh", name)
    stack = operation.open_stack(name, create=False)
    outcome = operation.run(stack, FleetView(), stack.refresh, verbose=args.verbose)
    if not outcome.ok:
        return operation.report_failure("refresh", name, outcome)
    changes = outcome.result.summary.resource_changes or {}
    operation.say(f"refresh: {changes_line({str(k): v for k, v in changes.items()})}")
    return 0

"""`lambda-sae up`: create or update the stack with a live view, then a short summary."""

from __future__ import annotations

import argparse
import functools

from pulumi import automation as auto

from lambda_provider.cli import operation, workspace
from lambda_provider.cli.summary import summary_lines
from lambda_provider.cli.view import INSTANCE, FleetView
from lambda_provider.client import LambdaError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    operation.add_common_arguments(parser)
    parser.add_argument(
        "--replace",
        action="append",
        metavar="URN",
        default=[],
        help="replace this resource (a URN or glob, e.g. '**lambda:Instance::node-1'); repeatable",
    )


def gone_instances(name: str, resources: list[dict]) -> list[str]:
    """Nodes in the state whose instance the API reports gone (terminated out of band, preempted)."""
    tracked = {
        res.get("id"): res["urn"].rsplit("::", 1)[-1]
        for res in resources
        if res.get("type") == INSTANCE and res.get("id")
    }
    if not tracked:
        return []
    try:
        with workspace.api_client(name) as client:
            live = {i.id for i in client.instances.list() if not i.is_gone_or_going}
    except LambdaError as exc:
        operation.warn(f"cannot list the account's instances ({exc}); not checking the state against them")
        return []
    return sorted(node for instance_id, node in tracked.items() if instance_id not in live)


def run(args: argparse.Namespace) -> int:
    name = args.stack
    operation.started("up", name)
    stack = operation.open_stack(name, create=True)
    resources = operation.state_resources(stack)
    gone = gone_instances(name, resources)
    if gone:
        operation.say(f"the instance of {', '.join(gone)} is gone at Lambda: refreshing the state first")
        refreshed = operation.run(stack, FleetView(), stack.refresh, verbose=args.verbose)
        if not refreshed.ok:
            return operation.report_failure("refresh", name, refreshed)
        resources = operation.state_resources(stack)
    view = FleetView(created=operation.created_times(resources))
    update = functools.partial(stack.up, replace=args.replace or None)
    outcome = operation.run(stack, view, update, verbose=args.verbose)
    if not outcome.ok:
        return operation.report_failure("up", name, outcome)
    result: auto.UpResult = outcome.result
    outputs = {key: value.value for key, value in result.outputs.items()}
    operation.say("")
    for line in summary_lines(name, outputs):
        operation.say(line)
    return 0

"""`lambda-sae destroy`: tear the stack down, then check the account (real ones too): nothing this stack owned is
left billing; orphans and retained filesystems are listed with their cost and the command that removes them. The
emulator stops afterwards, unless orphans remain on it (`--stop-emulator` stops it anyway)."""

from __future__ import annotations

import argparse
import time

from lambda_provider.cli import operation, workspace
from lambda_provider.cli.format import money
from lambda_provider.cli.instances import filesystem_line, instance_line, inventory
from lambda_provider.cli.view import FleetView


def add_arguments(parser: argparse.ArgumentParser) -> None:
    operation.add_common_arguments(parser)
    parser.add_argument(
        "--stop-emulator",
        action="store_true",
        help="stop the local emulator even when orphans remain on it (they are lost with it)",
    )


def account_check(name: str, stop_emulator: bool) -> int:
    inv, now = inventory(name), time.time()
    left = [row for row in inv.instances if row.owner == name]
    code = 0
    if left:
        code = 1
        operation.warn(
            f"account check: {len(left)} instance(s) of stack {name} still billing "
            f"{money(sum(r.hourly_usd for r in left))}/h:"
        )
        for row in left:
            operation.warn(instance_line(row, now))
        operation.warn(f"run `lambda-sae destroy --stack {name}` again")
    else:
        operation.say(f"account check: nothing of stack {name} is left running")
    orphans = inv.orphans
    if orphans:
        operation.say(
            f"{len(orphans)} orphan(s) in the account (no ownership tags), "
            f"{money(sum(r.hourly_usd for r in orphans))}/h:"
        )
        for row in orphans:
            operation.say(instance_line(row, now))
        operation.say(f"  `lambda-sae reap --stack {name}` terminates them")
    others = [row for row in inv.instances if row.owner not in (None, name)]
    if others:
        owners = ", ".join(sorted({str(row.owner) for row in others}))
        operation.say(f"{len(others)} instance(s) of other stacks ({owners}) left alone")
    for row in inv.filesystems:
        operation.say("retained filesystem (bills storage while it exists):")
        operation.say(filesystem_line(row))
        operation.say(
            f"  `lambda-sae reap --filesystem {row.filesystem.name} --stack {name}` deletes it (checkpoints included)"
        )
    if workspace.is_emulator(name):
        if orphans and not stop_emulator:
            operation.say(
                f"emulator left running: orphans remain on it (reap them, or `lambda-sae destroy "
                f"--stack {name} --stop-emulator` to stop it anyway)"
            )
        else:
            operation.say(workspace.stop_emulator() or "emulator stopped")
    return code


def run(args: argparse.Namespace) -> int:
    name = args.stack
    operation.started("destroy", name)
    stack = operation.open_stack(name, create=False)
    outcome = operation.run(stack, FleetView(), stack.destroy, verbose=args.verbose)
    if not outcome.ok:
        code = operation.report_failure("destroy", name, outcome)
        account_check(name, stop_emulator=False)
        return code
    changes = outcome.result.summary.resource_changes or {}
    operation.say(f"destroyed: {changes.get('delete', 0)} resource(s) deleted")
    return account_check(name, args.stop_emulator)

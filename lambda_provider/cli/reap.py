"""`lambda-sae reap`: terminate the account's orphans (instances without our ownership tags) after confirmation;
never anything a stack owns. `--filesystem NAME` deletes one retained filesystem (checkpoints and all)."""

from __future__ import annotations

import argparse
import sys

from lambda_provider.cli import instances, workspace
from lambda_provider.cli.format import money


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--filesystem", metavar="NAME", help="delete this filesystem (not in use) instead: its data is lost"
    )


def confirm(question: str, assume_yes: bool, fix: str) -> bool:
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        print(f"not confirmed (no terminal to ask on): {fix}", file=sys.stderr)
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def reap_filesystem(args: argparse.Namespace) -> int:
    inv = instances.inventory(args.stack)
    row = next((r for r in inv.filesystems if r.filesystem.name == args.filesystem), None)
    if row is None:
        print(
            f"no filesystem {args.filesystem!r} in the account of stack {args.stack}; `lambda-sae instances "
            f"--stack {args.stack}` lists them",
            file=sys.stderr,
        )
        return 1
    if row.filesystem.is_in_use:
        print(
            f"filesystem {args.filesystem} is in use by an instance: terminate it first "
            f"(`lambda-sae destroy --stack {args.stack}`)",
            file=sys.stderr,
        )
        return 1
    print(instances.filesystem_line(row))
    fix = f"run `lambda-sae reap --filesystem {args.filesystem} --yes --stack {args.stack}` to delete it"
    if not confirm(f"delete filesystem {args.filesystem} and everything on it?", args.yes, fix):
        return 1
    with workspace.api_client(args.stack) as client:
        client.filesystems.delete(row.filesystem.id)
    print(f"deleted filesystem {args.filesystem} ({row.filesystem.id})")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.filesystem:
        return reap_filesystem(args)
    orphans = instances.inventory(args.stack).orphans
    if not orphans:
        print(f"no orphans in the account of stack {args.stack}")
        return 0
    import time

    now = time.time()
    print(f"{len(orphans)} orphan(s), {money(sum(r.hourly_usd for r in orphans))}/h:")
    for row in orphans:
        print(instances.instance_line(row, now))
    fix = f"run `lambda-sae reap --yes --stack {args.stack}` to terminate them"
    if not confirm(f"terminate these {len(orphans)} instance(s)?", args.yes, fix):
        return 1
    ids = [row.instance.id for row in orphans]
    with workspace.api_client(args.stack) as client:
        client.instances.terminate(ids)
    for instance_id in ids:
        print(f"terminated {instance_id}")
    return 0

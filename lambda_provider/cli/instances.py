"""`lambda-sae instances`: every instance and filesystem in the stack's account, each instance with its owning stack
(from our ownership tags) or **orphan**, type, region, $/h, age and spent so far."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from lambda_provider.cli import account, workspace
from lambda_provider.cli.format import duration, money


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # --stack only: it names the account


@dataclass(frozen=True)
class Inventory:
    instances: list[account.InstanceRow]
    filesystems: list[account.FilesystemRow]

    @property
    def orphans(self) -> list[account.InstanceRow]:
        return [row for row in self.instances if row.orphan]


def state_created(name: str) -> dict[str, float]:
    """Instance id -> creation time, from the stack's state when it exists."""
    from pulumi import automation as auto

    from lambda_provider.cli.operation import state_resources, tracked_instances

    try:
        stack = workspace.stack(name)
    except (workspace.WorkspaceError, auto.errors.CommandError):
        return {}
    return {i: created for i, (_, created) in tracked_instances(state_resources(stack)).items() if created}


def inventory(name: str, created: dict[str, float] | None = None) -> Inventory:
    seen = account.FirstSeen(workspace.repo_root() / ".lambda-sae" / "first-seen.json")
    with workspace.api_client(name) as client:
        rows = account.instance_rows(client, workspace.project_name(), seen, created)
        filesystems = account.filesystem_rows(client)
    return Inventory(rows, filesystems)


def instance_line(row: account.InstanceRow, now: float) -> str:
    inst = row.instance
    owner = f"stack {row.owner}" if row.owner else "ORPHAN"
    age, spent = row.age(now), row.spent(now)
    prefix = "" if row.created_exact else ">="
    age_text = f"{prefix}{duration(age)}" if age is not None else "age unknown"
    spent_text = money(spent) if spent is not None else "?"
    if spent_text[0] == "$":
        spent_text = prefix + spent_text
    return (
        f"  {inst.id:<34} {owner:<16} {inst.name or '-':<18} "
        f"{inst.instance_type.name if inst.instance_type else '?':<18} "
        f"{inst.region.name if inst.region else '?':<10} {inst.status:<9} {money(row.hourly_usd)}/h  "
        f"age {age_text:<9} spent {spent_text}"
    )


def filesystem_line(row: account.FilesystemRow) -> str:
    fs = row.filesystem
    cost = f"{money(row.monthly_usd)}/month" if row.monthly_usd is not None else "$/month unknown (not in the API)"
    use = "in use" if fs.is_in_use else "not in use"
    return (
        f"  {fs.id:<34} {fs.name:<18} {fs.region.name if fs.region else '?':<10} {account.size(row.size_bytes):<10} "
        f"{use:<10} {cost}, created {fs.created or '?'}"
    )


def print_inventory(inv: Inventory, now: float | None = None) -> None:
    now = time.time() if now is None else now
    print(f"instances ({len(inv.instances)}):")
    for row in inv.instances:
        print(instance_line(row, now))
    if not inv.instances:
        print("  none")
    print(f"filesystems ({len(inv.filesystems)}):")
    for fs in inv.filesystems:
        print(filesystem_line(fs))
    if not inv.filesystems:
        print("  none")
    hourly = sum(row.hourly_usd for row in inv.instances)
    print(f"total: {money(hourly)}/h for {len(inv.instances)} instance(s), {len(inv.orphans)} orphan(s)")


def run(args: argparse.Namespace) -> int:
    inv = inventory(args.stack, state_created(args.stack))
    print_inventory(inv)
    if inv.orphans:
        hourly = sum(row.hourly_usd for row in inv.orphans)
        print(
            f"{len(inv.orphans)} orphan(s) (no ownership tags: no stack will ever terminate them) bill "
            f"{money(hourly)}/h: `lambda-sae reap --stack {args.stack}` terminates them"
        )
    return 0

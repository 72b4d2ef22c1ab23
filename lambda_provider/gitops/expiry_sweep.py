"""Scheduled step: destroy every stack whose `expires_at` output is in the past (a forgotten fleet stops billing).

usage: python -m lambda_provider.gitops.expiry_sweep [--stack NAME ...] [--cwd DIR] [--now ISO8601] [--dry-run]
Without --stack, every stack of the backend (`pulumi stack ls --json`). Filesystems the stack retains
(deleteOnDestroy: false) survive the destroy with their checkpoints. Exit 1 when a destroy failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from lambda_provider.gitops.pulumi_cli import pulumi


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def all_stacks(cwd: Path) -> list[str]:
    result = pulumi("stack", "ls", "--json", stack=None, cwd=cwd)
    if not result.ok:
        raise SystemExit(f"`pulumi stack ls` failed:\n{result.output}")
    return [entry["name"] for entry in json.loads(result.stdout)]


def expires_at(stack: str, cwd: Path) -> datetime | None:
    result = pulumi("stack", "output", "--json", stack=stack, cwd=cwd)
    value = json.loads(result.stdout or "{}").get("expires_at") if result.ok else None
    return parse_time(value) if isinstance(value, str) and value else None


def sweep(stack: str, cwd: Path, now: datetime, dry_run: bool) -> bool:
    expiry = expires_at(stack, cwd)
    if expiry is None:
        print(f"stack {stack}: no expires_at output, kept")
        return True
    if expiry > now:
        print(f"stack {stack}: expires {expiry.isoformat()}, kept")
        return True
    print(f"stack {stack}: expired at {expiry.isoformat()}: destroying" + (" (dry run)" if dry_run else ""))
    if dry_run:
        return True
    result = pulumi("destroy", "--yes", stack=stack, cwd=cwd)
    print(result.output)
    if not result.ok:
        print(f"::error title=Expired stack {stack} not destroyed::`pulumi destroy` exited {result.returncode}")
    return result.ok


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lambda_provider.gitops.expiry_sweep", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--stack", action="append")
    parser.add_argument("--cwd", type=Path, default=Path.cwd())
    parser.add_argument("--now", type=parse_time, default=datetime.now(UTC))
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    stacks = args.stack or all_stacks(args.cwd)
    results = [sweep(stack, args.cwd, args.now, args.dry_run) for stack in stacks]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())

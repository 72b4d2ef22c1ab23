"""Scheduled step: fail loudly when a stack no longer matches reality or its program.

usage: python -m lambda_provider.gitops.drift_check --stack dev [--stack prod ...] [--cwd DIR]
`pulumi preview --refresh --expect-no-changes`: the refresh reads every resource from Lambda (an instance
terminated out of band drops out), then the preview compares with the program; any proposed change is drift.
Nothing is written to the state. Then the stack's account is checked for orphans: live instances without our
ownership tags, which no stack will ever terminate and which the preview cannot see. Exit 1 when any stack drifted,
could not be checked, or its account holds orphans.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lambda_provider.cli.account import live_instances, owner_of
from lambda_provider.client import LambdaError
from lambda_provider.gitops.pulumi_cli import pulumi, stack_config
from lambda_provider.resources.settings import settings_from

PROJECT = "lambda-sae"


def check(stack: str, cwd: Path) -> bool:
    result = pulumi("preview", "--refresh", "--expect-no-changes", "--diff", stack=stack, cwd=cwd)
    if result.ok:
        print(f"stack {stack}: no drift")
        return True
    print(
        f"::error title=Drift in stack {stack}::the live resources or the program differ from the state; "
        f"run `pulumi refresh --stack {stack}` and `pulumi up --stack {stack}` (or revert the change)"
    )
    print(f"DRIFT in stack {stack}:\n{result.output}")
    return False


def secret_api_key(stack: str, cwd: Path) -> str | None:
    """The stack secret lambda:apiKey, decrypted (`pulumi config --json` hides it)."""
    secret = pulumi("config", "get", "lambda:apiKey", stack=stack, cwd=cwd)
    return secret.stdout.strip() if secret.ok and secret.stdout.strip() else None


def check_orphans(stack: str, cwd: Path) -> bool:
    config = {
        k: str(v) for k, v in stack_config(stack, cwd).items() if isinstance(v, str | int | float) and v != "[secret]"
    }
    settings = settings_from(config.get)
    if not settings.api_key:
        key = secret_api_key(stack, cwd)
        if key is None:
            print(
                f"::error title=Orphan check of stack {stack}::no Lambda API key: set the stack secret "
                f"lambda:apiKey or LAMBDA_API_KEY"
            )
            return False
        settings = settings_from(lambda k: key if k == "lambda:apiKey" else config.get(k))
    try:
        with settings.client() as client:
            instances = live_instances(client)
    except LambdaError as exc:
        print(f"::error title=Orphan check of stack {stack}::cannot list the account's instances: {exc}")
        return False
    orphans = [i for i in instances if owner_of(i, PROJECT) is None]
    if not orphans:
        print(f"stack {stack}: no orphans in its account")
        return True
    hourly = sum(i.instance_type.price_cents_per_hour for i in orphans if i.instance_type) / 100.0
    print(
        f"::error title=Orphans in the account of stack {stack}::{len(orphans)} instance(s) without ownership tags "
        f"bill ${hourly:.2f}/h and no stack will terminate them: `lambda-sae reap --stack {stack}` terminates them"
    )
    for inst in orphans:
        kind = inst.instance_type.name if inst.instance_type else "?"
        print(f"ORPHAN {inst.id} {inst.name or '-'} {kind} {inst.region.name if inst.region else '?'} {inst.status}")
    return False


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lambda_provider.gitops.drift_check", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--stack", action="append", required=True)
    parser.add_argument("--cwd", type=Path, default=Path.cwd())
    args = parser.parse_args()
    results = [all([check(stack, args.cwd), check_orphans(stack, args.cwd)]) for stack in args.stack]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())

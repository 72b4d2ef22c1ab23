#!/usr/bin/env python3
"""Scheduled step: fail loudly when a stack no longer matches reality or its program.

usage: scripts/gitops/drift_check.py --stack dev [--stack prod ...] [--cwd DIR]
`pulumi preview --refresh --expect-no-changes`: the refresh reads every resource from Lambda (an instance
terminated out of band drops out), then the preview compares with the program; any proposed change is drift.
Nothing is written to the state. Exit 1 when any stack drifted or could not be checked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pulumi_cli import pulumi


def check(stack: str, cwd: Path) -> bool:
    result = pulumi("preview", "--refresh", "--expect-no-changes", "--diff", stack=stack, cwd=cwd)
    if result.ok:
        print(f"stack {stack}: no drift")
        return True
    print(f"::error title=Drift in stack {stack}::the live resources or the program differ from the state; "
          f"run `pulumi refresh --stack {stack}` and `pulumi up --stack {stack}` (or revert the change)")
    print(f"DRIFT in stack {stack}:\n{result.output}")
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", action="append", required=True)
    parser.add_argument("--cwd", type=Path, default=Path.cwd())
    args = parser.parse_args()
    results = [check(stack, args.cwd) for stack in args.stack]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())

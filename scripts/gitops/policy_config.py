#!/usr/bin/env python3
"""Write the policy pack's config for one stack: its budget (lambda-sae:budget) and filesystem allowances.

usage: scripts/gitops/policy_config.py --stack dev [--cwd DIR] [--allow-filesystem-deletion NAME ...] > config.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pulumi_cli import stack_config

BUDGET_KEY = "lambda-sae:budget"


def policy_config(config: dict, allow_filesystem_deletion: list[str]) -> dict:
    budget = config.get(BUDGET_KEY)
    if isinstance(budget, str):
        budget = json.loads(budget)
    if not isinstance(budget, dict) or "maxUsdPerHour" not in budget or "maxHours" not in budget:
        raise SystemExit(f"the stack has no {BUDGET_KEY} with maxUsdPerHour and maxHours; set them, e.g. "
                         f"`pulumi config set --path {BUDGET_KEY}.maxUsdPerHour 10`")
    return {
        "fleet-budget": {"max_usd_per_hour": float(budget["maxUsdPerHour"]), "max_hours": float(budget["maxHours"])},
        "filesystem-keeps-checkpoints": {"allow_filesystem_deletion": allow_filesystem_deletion},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--cwd", type=Path, default=Path.cwd())
    parser.add_argument("--allow-filesystem-deletion", nargs="*", default=[])
    args = parser.parse_args()
    json.dump(policy_config(stack_config(args.stack, args.cwd), args.allow_filesystem_deletion), sys.stdout, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

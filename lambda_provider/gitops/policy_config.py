"""Write the policy pack's config for one stack: its budget (lambda-sae:budget) and filesystem allowances.

usage: python -m lambda_provider.gitops.policy_config --stack dev [--cwd DIR] [--cap-usd-per-hour N]
       [--allow-filesystem-deletion NAME ...] > config.json
The pack enforces the lower of the stack's own budget and the repository's cap (--cap-usd-per-hour, default the
LAMBDA_SAE_CAP_USD_PER_HOUR variable): the program already refuses a plan over its stack budget, so the cap is what
stops a pull request that raises its own budget along with its nodes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from lambda_provider.domain import BUDGET_CONFIG_KEY, CAP_VARIABLE, stack_budget
from lambda_provider.gitops.pulumi_cli import stack_config


def cap_from_env() -> float | None:
    raw = os.environ.get(CAP_VARIABLE, "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{CAP_VARIABLE}={raw!r} is not a number; set it to the repository's $/hour cap") from None


def policy_config(config: dict, allow_filesystem_deletion: list[str], cap_usd_per_hour: float | None = None) -> dict:
    budget = stack_budget(config)
    if budget.max_usd_per_hour is None or budget.max_hours is None:
        raise SystemExit(
            f"the stack has no {BUDGET_CONFIG_KEY} with maxUsdPerHour and maxHours; set them, e.g. "
            f"`pulumi config set --path {BUDGET_CONFIG_KEY}.maxUsdPerHour 10`"
        )
    per_hour, source = budget.capped(cap_usd_per_hour)
    return {
        "fleet-budget": {"max_usd_per_hour": per_hour, "max_hours": budget.max_hours, "budget_source": source},
        "filesystem-keeps-checkpoints": {"allow_filesystem_deletion": allow_filesystem_deletion},
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lambda_provider.gitops.policy_config", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--stack", required=True)
    parser.add_argument("--cwd", type=Path, default=Path.cwd())
    parser.add_argument("--cap-usd-per-hour", type=float, default=None, help=f"default: ${CAP_VARIABLE}")
    parser.add_argument("--allow-filesystem-deletion", nargs="*", default=[])
    args = parser.parse_args()
    cap = args.cap_usd_per_hour if args.cap_usd_per_hour is not None else cap_from_env()
    json.dump(
        policy_config(stack_config(args.stack, args.cwd), args.allow_filesystem_deletion, cap), sys.stdout, indent=2
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

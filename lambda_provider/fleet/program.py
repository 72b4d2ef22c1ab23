"""The Pulumi program body (`__main__.py` calls `main()`): read and validate the stack config, check the budget, the
fleet's size and its CPU architectures against the live catalogue, build the `GpuFleet`, export its outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime

from lambda_provider.client import DEFAULT_BASE_URL, LambdaError
from lambda_provider.fleet.component import GpuFleet
from lambda_provider.fleet.config import SCHEMA_DOC, FleetConfig, FleetConfigError, parse_fleet_config, plan_problems
from lambda_provider.fleet.cost import OverBudget, PlanCost, check_budget, plan_cost
from lambda_provider.resources.settings import settings_from


def project_config() -> dict[str, Any]:
    """Every `<project>:<key>` of the stack config, objects decoded."""
    prefix = f"{pulumi.get_project()}:"
    raw: dict[str, Any] = {}
    for key, value in pulumi.runtime.get_config_env().items():
        if not key.startswith(prefix):
            continue
        try:
            raw[key[len(prefix) :]] = json.loads(value)
        except (TypeError, ValueError):
            raw[key[len(prefix) :]] = value
    return raw


def secret_keys() -> set[str]:
    """The project keys the stack stores as secrets (`pulumi config set --secret`), without the prefix."""
    prefix = f"{pulumi.get_project()}:"
    listed = set(pulumi.runtime.config.get_config_secret_keys_env())
    return {
        key[len(prefix) :]
        for key in pulumi.runtime.get_config_env()
        if key.startswith(prefix) and (key in listed or pulumi.runtime.config.is_config_secret(key))
    }


def api_url() -> str:
    return pulumi.runtime.get_config("lambda:apiUrl") or os.environ.get("LAMBDA_API_URL") or DEFAULT_BASE_URL


def load_config(repo_root: Path) -> FleetConfig:
    try:
        return parse_fleet_config(project_config(), api_url=api_url(), repo_root=repo_root, secret_keys=secret_keys())
    except FleetConfigError as exc:
        raise pulumi.RunError(f"{exc}\n\nSchema:\n{SCHEMA_DOC}") from None


def priced_plan(config: FleetConfig) -> PlanCost:
    settings = settings_from(pulumi.runtime.get_config)
    if not settings.api_key:
        raise pulumi.RunError(
            "no Lambda API key: `pulumi config set --secret lambda:apiKey <key>` or export "
            "LAMBDA_API_KEY (make up does this for the emulator)"
        )
    try:
        with settings.client() as client:
            catalogue = client.instance_types.list()
    except LambdaError as exc:
        raise pulumi.RunError(f"cannot read the instance catalogue from {api_url()} to price the plan: {exc}") from None
    try:
        cost = plan_cost(config, catalogue)
    except ValueError as exc:
        raise pulumi.RunError(str(exc)) from None
    refusals = []
    try:
        check_budget(config, cost)
    except OverBudget as exc:
        refusals.append(str(exc))  # first: the numbers say most about a plan that cannot run
    problems = plan_problems(config, {name: item.instance_type.architecture for name, item in catalogue.items()})
    if problems:
        refusals.append(str(FleetConfigError(problems)))
    if refusals:
        raise pulumi.RunError("\n".join(refusals))
    return cost


def main(repo_root: Path) -> None:
    config = load_config(repo_root)
    cost = priced_plan(config)
    fleet = GpuFleet("fleet", config, repo_root=repo_root)
    pulumi.export("target", config.target)
    pulumi.export("nodes", fleet.nodes)
    pulumi.export("planned_max_hourly_usd", cost.hourly_usd)
    pulumi.export("hourly_cost_usd", fleet.hourly_cost_usd)
    pulumi.export("projected_cost_usd", fleet.projected_cost_usd)
    pulumi.export("max_hours", config.budget.max_hours)
    pulumi.export("created_at", fleet.created_at)
    pulumi.export("expires_at", fleet.expires_at)
    pulumi.export("filesystem", fleet.filesystem)
    pulumi.export("torchrun", fleet.torchrun)
    pulumi.export("training", fleet.training)
    if fleet.ssh_private_key is not None:
        pulumi.export("ssh_private_key", fleet.ssh_private_key)

"""The fleet: stack config -> SSH key, filesystem, instances, per-node ready/setup/launch steps, training run."""

from lambda_provider.fleet.config import FleetConfig, FleetConfigError, parse_fleet_config
from lambda_provider.fleet.cost import OverBudget, check_budget, plan_cost

__all__ = ["FleetConfig", "FleetConfigError", "OverBudget", "check_budget", "parse_fleet_config", "plan_cost"]

"""The lambda-sae policy pack (CrossGuard), every policy mandatory: `policy/__main__.py` calls `serve()`.

`POLICIES` is plain data (importing this module starts nothing); `serve()` builds the `PolicyPack`, whose
constructor serves the engine until it is stopped. The validators are in lambda_provider/gitops/policies.py.
"""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ResourceValidationPolicy,
    StackValidationPolicy,
)

from lambda_provider.gitops.policies import make_budget_validator, validate_filesystem_kept, validate_ownership
from lambda_provider.gitops.prices import price_table

PACK_NAME = "lambda-sae"
BUDGET_SCHEMA = PolicyConfigSchema(
    properties={
        "max_usd_per_hour": {"type": "number"},
        "max_hours": {"type": "number"},
        "prices_cents_per_hour": {"type": "object"},
        "budget_source": {"type": "string"},
    }
)

POLICIES = [
    StackValidationPolicy(
        name="fleet-budget",
        description="The stack's projected cost (instances x max hours) must stay within its budget.",
        validate=make_budget_validator(price_table),
        config_schema=BUDGET_SCHEMA,
    ),
    ResourceValidationPolicy(
        name="instance-ownership-tags",
        description="Every Lambda instance carries the project/stack/resource ownership tags.",
        validate=validate_ownership,
    ),
    ResourceValidationPolicy(
        name="filesystem-keeps-checkpoints",
        description="A filesystem holding checkpoints is not deleted unless explicitly allowed.",
        validate=validate_filesystem_kept,
        config_schema=PolicyConfigSchema(properties={"allow_filesystem_deletion": {}}),
    ),
]


def serve() -> None:
    """Serve the pack to the engine (the CLI starts `python -u policy/` and reads the port this prints)."""
    PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)

"""The lambda-sae policy pack (CrossGuard): every policy mandatory. Validators: lambda_provider/plan/policies.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: lambda_provider

from pulumi_policy import (  # noqa: E402
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ResourceValidationPolicy,
    StackValidationPolicy,
)

from lambda_provider.plan.policies import (  # noqa: E402
    make_budget_validator,
    validate_filesystem_kept,
    validate_ownership,
)
from lambda_provider.plan.prices import price_table  # noqa: E402

BUDGET_SCHEMA = PolicyConfigSchema(
    properties={
        "max_usd_per_hour": {"type": "number"},
        "max_hours": {"type": "number"},
        "prices_cents_per_hour": {"type": "object"},
        "budget_source": {"type": "string"},
    }
)

PolicyPack(
    name="lambda-sae",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
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
    ],
)

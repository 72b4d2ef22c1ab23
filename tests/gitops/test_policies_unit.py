"""The policy pack's validators called directly, with the SDK's own argument types."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from pulumi_policy import PolicyResource, PolicyResourceOptions, ResourceValidationArgs, StackValidationArgs
from pulumi_policy.policy import PolicyCustomTimeouts

from lambda_provider.gitops.policies import make_budget_validator, validate_filesystem_kept, validate_ownership
from lambda_provider.gitops.preview import FILESYSTEM_TYPE, INSTANCE_TYPE
from tests.pulumi_support import REPO_ROOT

PRICES = {"gpu_1x_gh200": 229, "gpu_1x_a10": 129, "gpu_1x_a100_sxm4": 199}


def opts(protect: bool = False) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def resource(rtype: str, name: str, props: dict[str, Any]) -> PolicyResource:
    return PolicyResource(rtype, props, f"urn:pulumi:dev::p::{rtype}::{name}", name, opts(), None, None, [], {})


def resource_args(
    rtype: str, name: str, props: dict[str, Any], config: dict | None = None, protect: bool = False
) -> ResourceValidationArgs:
    return ResourceValidationArgs(
        rtype, props, f"urn:pulumi:dev::p::{rtype}::{name}", name, opts(protect), None, config or {}, None
    )


# The real `Filesystem` registered under the SDK's own mocks (in a child process: mocks replace the SDK's global
# settings): the inputs it sends are what the policy pack sees as props.
CAPTURE_FILESYSTEM_INPUTS = """
import asyncio, json, sys
import pulumi
from lambda_provider.resources.filesystem import Filesystem

sent = {}
class Capture(pulumi.runtime.Mocks):
    def new_resource(self, args):
        sent.update({k: v for k, v in args.inputs.items() if k != "__provider"})
        return "fs-id", args.inputs
    def call(self, args):
        return {}

pulumi.runtime.set_mocks(Capture(), preview=True)
Filesystem("fs", region="us-east-1", name="ckpt",
           opts=pulumi.ResourceOptions(retain_on_delete=sys.argv[1] == "retain"))
asyncio.get_event_loop().run_until_complete(asyncio.sleep(0.2))
print(json.dumps(sent))
"""


def filesystem_inputs(retain_on_delete: bool) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", CAPTURE_FILESYSTEM_INPUTS, "retain" if retain_on_delete else "delete"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(proc.stdout)


def violations(validate, args) -> list[str]:
    found: list[str] = []
    validate(args, lambda message, urn=None: found.append(message))
    return found


def instance(name: str, placements: list[tuple[str, str]], price: int | None = None) -> PolicyResource:
    props = {
        "placements": [{"instance_type": t, "region": r} for t, r in placements],
        "price_cents_per_hour": price,
        "instance_type": placements[0][0],
    }
    return resource(INSTANCE_TYPE, name, props)


BUDGET = make_budget_validator(lambda config: (PRICES, "test prices"))


def test_budget_counts_running_prices_and_worst_case_for_new_nodes() -> None:
    resources = [
        instance("a", [("gpu_1x_a10", "us-east-1")], price=129),
        instance("b", [("gpu_1x_a10", "us-east-1"), ("gpu_1x_gh200", "us-east-3")]),
    ]
    ok = StackValidationArgs(resources, {"max_usd_per_hour": 3.58, "max_hours": 2})
    assert violations(BUDGET, ok) == []
    over = StackValidationArgs(resources, {"max_usd_per_hour": 3.5, "max_hours": 2})
    [message] = violations(BUDGET, over)
    assert "projected cost $7.16 for 2 h ($3.58/h" in message
    assert "b $2.29/h (up to gpu_1x_gh200)" in message
    assert "exceeds the budget $7.00" in message


def test_budget_without_config_or_price_says_what_to_fix() -> None:
    [missing] = violations(BUDGET, StackValidationArgs([], {}))
    assert "`python -m lambda_provider.gitops.policy_config --stack S`" in missing
    unknown = StackValidationArgs(
        [instance("x", [("gpu_9x_future", "us-east-1")])], {"max_usd_per_hour": 100, "max_hours": 1}
    )
    [message] = violations(BUDGET, unknown)
    assert "no price known for x (gpu_9x_future)" in message


def test_ownership_tags_required_and_not_spoofed() -> None:
    owner = {"project": "lambda-sae", "stack": "dev", "resource": "node-0"}
    good = resource_args(INSTANCE_TYPE, "n", {"owner": owner, "tags": {"team": "sae"}})
    assert violations(validate_ownership, good) == []
    [none] = violations(validate_ownership, resource_args(INSTANCE_TYPE, "n", {"tags": {}}))
    assert "has no owner" in none
    [empty] = violations(validate_ownership, resource_args(INSTANCE_TYPE, "n", {"owner": {**owner, "stack": ""}}))
    assert "missing stack" in empty
    spoof = resource_args(INSTANCE_TYPE, "n", {"owner": owner, "tags": {"pulumi-stack": "prod"}})
    [spoofed] = violations(validate_ownership, spoof)
    assert "reserved prefix 'pulumi-'" in spoofed
    assert violations(validate_ownership, resource_args(FILESYSTEM_TYPE, "fs", {})) == []


def test_filesystem_deleted_on_destroy_needs_an_allowance() -> None:
    doomed = filesystem_inputs(retain_on_delete=False)  # the fleet's `deleteOnDestroy: true`
    [message] = violations(validate_filesystem_kept, resource_args(FILESYSTEM_TYPE, "fs", doomed))
    assert "filesystem ckpt would be deleted on destroy" in message
    assert '"allow_filesystem_deletion": ["ckpt"]' in message
    allowed = resource_args(FILESYSTEM_TYPE, "fs", doomed, {"allow_filesystem_deletion": ["ckpt"]})
    assert violations(validate_filesystem_kept, allowed) == []
    assert violations(validate_filesystem_kept, resource_args(FILESYSTEM_TYPE, "fs", doomed, protect=True)) == []


def test_filesystem_kept_on_destroy_passes() -> None:
    kept = filesystem_inputs(retain_on_delete=True)
    assert violations(validate_filesystem_kept, resource_args(FILESYSTEM_TYPE, "fs", kept)) == []

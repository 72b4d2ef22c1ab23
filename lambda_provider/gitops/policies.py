"""The policy pack's validators, plain functions to unit-test (lambda_provider/gitops/policy_pack.py assembles them).

Budget: the stack's instances, each at its running price or (not yet launched) its most expensive acceptable
type, times `max_hours`, must not exceed `max_usd_per_hour` x `max_hours` (policy config, which
lambda_provider/gitops/policy_config.py writes from the stack's `lambda-sae:budget`).
Ownership: every Instance carries the project/stack/resource owner that becomes its `pulumi-*` tags, and no user
tag may spoof those. Filesystems: one whose inputs say it is deleted on destroy needs an explicit allowance; the
input is `retained` (what lambda_provider/resources/filesystem.py sends: false when `retain_on_delete` is off, i.e.
the stack sets `lambda-sae:filesystem.deleteOnDestroy: true`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs, StackValidationArgs
from pulumi_policy.proxy import UnknownValueError

from lambda_provider.domain import RESERVED_TAG_PREFIX, parse_placements, worst_case_price
from lambda_provider.gitops.preview import FILESYSTEM_TYPE, INSTANCE_TYPE

PriceTable = Callable[[Mapping[str, Any]], tuple[dict[str, int], str]]
OWNER_KEYS = ("project", "stack", "resource")


def _get(props: Any, key: str) -> Any:
    """A property, or None while it is unknown (preview): touching an unknown would skip the whole policy."""
    try:
        return _plain(props.get(key))
    except UnknownValueError:
        return None


def _plain(value: Any) -> Any:
    """Plain dicts and lists from the SDK's unknown-checking proxies (raises UnknownValueError inside unknowns)."""
    if isinstance(value, Mapping):
        return {k: _plain(value[k]) for k in value}
    if not isinstance(value, str | bytes) and hasattr(value, "__iter__") and hasattr(value, "__len__"):
        return [_plain(value[i]) for i in range(len(value))]
    return value


def instance_cents_per_hour(props: Any, prices: Mapping[str, int]) -> tuple[int | None, str]:
    running = _get(props, "price_cents_per_hour")
    if isinstance(running, int | float) and not isinstance(running, bool) and running > 0:
        return int(running), f"{_get(props, 'instance_type')} running"
    placements = parse_placements(_get(props, "placements"))
    worst = worst_case_price(prices, (p.instance_type for p in placements))
    if worst is None:
        return None, ", ".join(p.instance_type for p in placements) or "no placements"
    cents, itype = worst
    return cents, f"up to {itype}"


def make_budget_validator(price_table: PriceTable) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        config = args.get_config()
        max_per_hour, max_hours = config.get("max_usd_per_hour"), config.get("max_hours")
        if max_per_hour is None or max_hours is None:
            report(
                "no budget: run with --policy-pack-config from `python -m lambda_provider.gitops.policy_config "
                "--stack S` (it reads the stack's lambda-sae:budget.maxUsdPerHour and maxHours)",
                None,
            )
            return
        prices, source = price_table(config)
        source_of_budget = config.get("budget_source") or "lambda-sae:budget.maxUsdPerHour"
        total, parts = 0, []
        for resource in args.resources:
            if resource.resource_type != INSTANCE_TYPE:
                continue
            cents, what = instance_cents_per_hour(resource.props, prices)
            if cents is None:
                report(
                    f"no price known for {resource.name} ({what}) in {source}; add it to the policy config "
                    "prices_cents_per_hour",
                    resource.urn,
                )
                continue
            total += cents
            parts.append(f"{resource.name} ${cents / 100:.2f}/h ({what})")
        hourly = total / 100.0
        projected, cap = hourly * float(max_hours), float(max_per_hour) * float(max_hours)
        if hourly > float(max_per_hour) + 1e-9:
            report(
                f"projected cost ${projected:.2f} for {float(max_hours):g} h (${hourly:.2f}/h: {'; '.join(parts)}) "
                f"exceeds the budget ${cap:.2f} (${float(max_per_hour):.2f}/h x {float(max_hours):g} h, "
                f"from {source_of_budget}). Remove nodes or expensive placements, or raise {source_of_budget}.",
                None,
            )

    return validate


def validate_ownership(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != INSTANCE_TYPE:
        return
    owner = _get(args.props, "owner")
    if not isinstance(owner, Mapping):
        report(
            f"instance {args.name} has no owner (project, stack, resource): it would launch without the "
            "pulumi-project/pulumi-stack/pulumi-resource tags that let a later run find it. Use "
            "lambda_provider.resources.Instance.",
            None,
        )
        return
    missing = [k for k in OWNER_KEYS if not isinstance(owner.get(k), str) or not owner.get(k)]
    if missing:
        report(f"instance {args.name}: owner is missing {', '.join(missing)}; the ownership tags would be empty", None)
    tags = _get(args.props, "tags") or {}
    spoofed = sorted(k for k in tags if str(k).startswith(RESERVED_TAG_PREFIX)) if isinstance(tags, Mapping) else []
    if spoofed:
        report(
            f"instance {args.name}: tags {spoofed} use the reserved prefix {RESERVED_TAG_PREFIX!r} of the "
            "ownership tags; rename them",
            None,
        )


def validate_filesystem_kept(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != FILESYSTEM_TYPE:
        return
    config = args.get_config()
    name = _get(args.props, "name") or args.name
    allowed = config.get("allow_filesystem_deletion")
    if allowed is True or (isinstance(allowed, list) and name in allowed) or args.opts.protect:
        return
    if _get(args.props, "retained") is False:
        report(
            f"filesystem {name} would be deleted on destroy, with the checkpoints it holds. Keep it "
            "(lambda-sae:filesystem.deleteOnDestroy: false) or allow it explicitly in the policy config: "
            f'"allow_filesystem_deletion": ["{name}"]',
            None,
        )

"""`FirewallRuleset`: a regional set of inbound rules, attached to instances at launch (`Instance(firewall_ruleset_ids=
[ruleset.ruleset_id])`).

Name and rules update in place (PATCH: attached instances get the new rules without a relaunch); the region replaces.
Rules are checked and normalised at preview the way the API would (a bare IP becomes /32), so a plan never shows a
change the API would undo. Lambda only attaches rulesets at launch: attaching another ruleset to an instance replaces
it. Delete waits while an instance that uses the ruleset still terminates. Ruleset names are not unique, so a create
whose answer was lost adopts only a matching ruleset that was not listed before it was sent.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, ReadResult, Resource, UpdateResult

from lambda_provider.client import LambdaClient, NotFound
from lambda_provider.client.errors import FirewallRulesetInUse
from lambda_provider.client.models import FirewallRule
from lambda_provider.client.models import FirewallRuleset as RulesetRecord
from lambda_provider.client.reconcile import create_or_adopt
from lambda_provider.domain import NAME_MAX
from lambda_provider.resources import lookups
from lambda_provider.resources.busy_retry import delete_while_busy
from lambda_provider.resources.failures import RUN_AGAIN, reported
from lambda_provider.resources.provider import LambdaProvider
from lambda_provider.resources.values import is_unknown

PROTOCOLS = ("tcp", "udp", "icmp", "all")
DESCRIPTION_MAX = 128


def normalize_rules(raw: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """(rules in the API's canonical form, problems as 'rules[i].key: what to fix')."""
    if not isinstance(raw, list):
        return [], ["rules: give a list of {protocol, port_range, source_network, description}"]
    rules, problems = [], []
    for index, rule in enumerate(raw):
        where = f"rules[{index}]"
        if not isinstance(rule, dict):
            problems.append(f"{where}: give a mapping {{protocol, port_range, source_network, description}}")
            continue
        unknown = sorted(set(rule) - {"protocol", "port_range", "source_network", "description"})
        if unknown:
            problems.append(
                f"{where}: unknown keys {unknown}; rules have protocol, port_range, source_network, description"
            )
        protocol = rule.get("protocol")
        if protocol not in PROTOCOLS:
            problems.append(f"{where}.protocol: {protocol!r} is not one of {', '.join(PROTOCOLS)}")
        ports = rule.get("port_range")
        if isinstance(ports, (list, tuple)):  # numbers arrive as floats through the engine's protobuf Struct
            ports = [int(p) if isinstance(p, float) and p.is_integer() else p for p in ports]
        if protocol == "icmp" and ports is not None:
            problems.append(f"{where}.port_range: not allowed for icmp; remove it")
        elif protocol != "icmp" and not (
            isinstance(ports, (list, tuple))
            and len(ports) == 2
            and all(isinstance(p, int) and 1 <= p <= 65535 for p in ports)
            and ports[0] <= ports[1]
        ):
            problems.append(f"{where}.port_range: give [min, max] with 1 <= min <= max <= 65535 (one port: [22, 22])")
        source = rule.get("source_network")
        try:
            network = str(ipaddress.IPv4Network(source if "/" in str(source) else f"{source}/32", strict=False))
        except (ValueError, TypeError):
            problems.append(
                f"{where}.source_network: {source!r} is not an IPv4 address or CIDR (e.g. 203.0.113.7 or 0.0.0.0/0)"
            )
            network = None
        description = rule.get("description", "")
        if not isinstance(description, str) or len(description) > DESCRIPTION_MAX:
            problems.append(f"{where}.description: at most {DESCRIPTION_MAX} characters")
        canonical: dict[str, Any] = {"protocol": protocol, "source_network": network, "description": description}
        if protocol != "icmp":
            canonical["port_range"] = ports
        rules.append(canonical)
    return rules, problems


def _records(rules: list[dict[str, Any]]) -> list[FirewallRule]:
    return [
        FirewallRule(
            r["protocol"],
            r["source_network"],
            (int(r["port_range"][0]), int(r["port_range"][1])) if r.get("port_range") else None,
            r.get("description") or "",
        )
        for r in rules
    ]


def _outputs(record: RulesetRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "region": record.region.name if record.region else None,
        "rules": [r.to_api() for r in record.rules],
        "ruleset_id": record.id,
    }


class FirewallRulesetProvider(LambdaProvider):
    replace_keys = ("region",)
    update_keys = ("name", "rules")  # PATCH: attached instances get the new rules without a relaunch
    delete_first = "never"  # names are not unique: the new ruleset can exist beside the old one

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures, checked = [], dict(news)
        name, region, rules = news.get("name"), news.get("region"), news.get("rules")
        if not is_unknown(name) and (not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX):
            failures.append(CheckFailure("name", f"ruleset name must be 1-{NAME_MAX} characters"))
        if not is_unknown(rules) and not any(is_unknown(r) for r in (rules if isinstance(rules, list) else [])):
            checked["rules"], problems = normalize_rules(rules)
            failures.extend(CheckFailure("rules", p) for p in problems)
        if not is_unknown(region):
            if not isinstance(region, str) or not region:
                failures.append(CheckFailure("region", "region is required (the instances' region, e.g. us-east-1)"))
            else:
                failures.extend(lookups.region_failures(self.settings, region))
        return CheckResult(checked, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        name, region, rules = props["name"], props["region"], props["rules"]
        with self.client() as client, reported(f"creating firewall ruleset {name!r} in {region}"):
            before = {r.id for r in client.firewall.list_rulesets()}
            record = create_or_adopt(
                lambda: client.firewall.create_ruleset(name, region, _records(rules)),
                lambda: self._find(client, name, region, rules, exclude=before),
                retry=client.transport.retry,
                what=f"firewall ruleset {name!r}",
            )
        return CreateResult(record.id, _outputs(record))

    @staticmethod
    def _find(
        client: LambdaClient, name: str, region: str, rules: list[dict[str, Any]], exclude: set[str]
    ) -> RulesetRecord | None:
        wanted = _outputs(RulesetRecord("", name, None, tuple(_records(rules))))["rules"]
        return next(
            (
                r
                for r in client.firewall.list_rulesets()
                if r.id not in exclude
                and r.name == name
                and r.region
                and r.region.name == region
                and [x.to_api() for x in r.rules] == wanted
            ),
            None,
        )

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        with self.client() as client, reported(f"updating firewall ruleset {news['name']!r}"):
            record = client.firewall.update_ruleset(id_, name=news["name"], rules=_records(news["rules"]))
        return UpdateResult(_outputs(record))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        try:
            with self.client() as client:
                record = client.firewall.get_ruleset(id_)
        except NotFound:
            return ReadResult(None, {})
        return ReadResult(id_, {**props, **_outputs(record)})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        with reported(f"deleting firewall ruleset {props.get('name')!r}", RUN_AGAIN):
            delete_while_busy(self.settings, lambda client: client.firewall.delete_ruleset(id_), FirewallRulesetInUse)


class FirewallRuleset(Resource, module="lambda", name="FirewallRuleset"):
    """Inbound rules for the instances that attach it. Type token `pulumi-python:dynamic/lambda:FirewallRuleset`.

    `rules`: [{protocol: tcp|udp|icmp|all, port_range: [min, max] (not for icmp), source_network: IPv4 CIDR,
    description}]. Instances only accept inbound traffic a rule allows (Lambda's default: SSH and ICMP).
    """

    name: pulumi.Output[str]
    region: pulumi.Output[str]
    rules: pulumi.Output[list[dict[str, Any]]]
    ruleset_id: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        region: pulumi.Input[str],
        rules: pulumi.Input[list[pulumi.Input[dict[str, Any]]]],
        name: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "name": name if name is not None else f"{pulumi.get_stack()}-{resource_name}"[:NAME_MAX],
            "region": region,
            "rules": rules,
            "ruleset_id": None,
        }
        super().__init__(FirewallRulesetProvider(), resource_name, props, opts)

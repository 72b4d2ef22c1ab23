"""Routes of the firewall: global rules (`/firewall-rules`, `/firewall-rulesets/global`) and rulesets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .. import validation
from ..models import CloudState
from ..router import Request, api
from ..schemas import FirewallRulesetCreateRequest, FirewallRulesetPatchRequest, FirewallRulesPutRequest


def ruleset_record(state: CloudState, doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["id"],
        "name": doc["name"],
        "region": state.catalog.region_api(doc["region"]),
        "rules": doc["rules"],
        "created": datetime.fromtimestamp(doc["created"], tz=UTC).isoformat(),
        "instance_ids": state.firewall.instance_ids(doc["id"]),
    }


@api("GET", "/firewall-rules")
def list_firewall_rules(request: Request) -> Any:
    return request.app.state.firewall.global_rules(request.caller)


@api("PUT", "/firewall-rules")
def set_firewall_rules(request: Request) -> Any:
    rules = [r.stored() for r in validation.parse(FirewallRulesPutRequest, request.body).data]
    return request.app.state.firewall.set_global_rules(request.caller, rules)


@api("GET", "/firewall-rulesets")
def list_rulesets(request: Request) -> Any:
    state = request.app.state
    return [ruleset_record(state, r) for r in state.firewall.list(request.caller)]


@api("POST", "/firewall-rulesets")
def create_ruleset(request: Request) -> Any:
    body = validation.parse(FirewallRulesetCreateRequest, request.body)
    state = request.app.state
    rules = [r.stored() for r in body.rules]
    return ruleset_record(state, state.firewall.create(request.caller, body.name, body.region, rules))


@api("GET", "/firewall-rulesets/global")
def get_global_ruleset(request: Request) -> Any:
    rules = request.app.state.firewall.global_rules(request.caller)
    return {"id": "global", "name": "Default Workspace Global Rules", "rules": rules}


@api("PATCH", "/firewall-rulesets/global")
def patch_global_ruleset(request: Request) -> Any:
    body = validation.parse(FirewallRulesetPatchRequest, request.body)
    if body.rules is not None:
        request.app.state.firewall.set_global_rules(request.caller, [r.stored() for r in body.rules])
    return get_global_ruleset(request)


@api("GET", "/firewall-rulesets/{id}")
def get_ruleset(request: Request) -> Any:
    state = request.app.state
    return ruleset_record(state, state.firewall.get(request.caller, request.params["id"]))


@api("PATCH", "/firewall-rulesets/{id}")
def patch_ruleset(request: Request) -> Any:
    body = validation.parse(FirewallRulesetPatchRequest, request.body)
    state = request.app.state
    rules = [r.stored() for r in body.rules] if body.rules is not None else None
    return ruleset_record(state, state.firewall.update(request.caller, request.params["id"], body.name, rules))


@api("DELETE", "/firewall-rulesets/{id}")
def delete_ruleset(request: Request) -> Any:
    request.app.state.firewall.delete(request.caller, request.params["id"])
    return {}

"""`/firewall-rulesets`: regional rulesets attached to instances at launch."""

from __future__ import annotations

from collections.abc import Sequence

from lambda_provider.client.models import FirewallRule, FirewallRuleset
from lambda_provider.client.transport import Transport


class FirewallClient:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list_rulesets(self) -> list[FirewallRuleset]:
        data = self._t.request("GET", "/firewall-rulesets")
        return [FirewallRuleset.from_api(r) for r in data if isinstance(r, dict)] if isinstance(data, list) else []

    def get_ruleset(self, ruleset_id: str) -> FirewallRuleset:
        return FirewallRuleset.from_api(self._t.request("GET", f"/firewall-rulesets/{ruleset_id}"))

    def create_ruleset(self, name: str, region: str, rules: Sequence[FirewallRule]) -> FirewallRuleset:
        body = {"name": name, "region": region, "rules": [r.to_api() for r in rules]}
        return FirewallRuleset.from_api(self._t.request("POST", "/firewall-rulesets", body=body, idempotent=False))

    def delete_ruleset(self, ruleset_id: str) -> None:
        self._t.request("DELETE", f"/firewall-rulesets/{ruleset_id}")

    def update_ruleset(
        self, ruleset_id: str, *, name: str | None = None, rules: Sequence[FirewallRule] | None = None
    ) -> FirewallRuleset:
        body: dict[str, object] = {}
        if name is not None:
            body["name"] = name
        if rules is not None:
            body["rules"] = [r.to_api() for r in rules]
        # Setting fields to given values: safe to repeat after a lost answer.
        return FirewallRuleset.from_api(
            self._t.request("PATCH", f"/firewall-rulesets/{ruleset_id}", body=body, idempotent=True)
        )

"""FirewallRuleset through the SDK's dynamic-provider host over gRPC, against the emulator."""

from __future__ import annotations

from typing import Any

import pytest

from lambda_provider.client import LaunchRequest
from lambda_provider.client.errors import FirewallRulesetInUse
from lambda_provider.resources import FirewallRuleset
from tests.providers.emulator_api import Api
from tests.providers.host_fixtures import PUBLIC_KEY, key_and_node
from tests.providers.host_harness import CheckFailed, Engine, registrations

SSH_FROM_OFFICE = {
    "protocol": "tcp",
    "port_range": [22, 22],
    "source_network": "203.0.113.7",
    "description": "SSH from the office",
}
PING = {"protocol": "icmp", "source_network": "0.0.0.0/0", "description": "ping"}


def _ruleset(rules: list[dict[str, Any]], **args: Any):
    args.setdefault("region", "us-east-1")
    return registrations(lambda: [FirewallRuleset("fw", name=args.pop("name", "sae-fw"), rules=rules, **args)])["fw"]


def test_rules_and_name_update_in_place_the_region_replaces(api: Api, engine: Engine) -> None:
    reg = _ruleset([SSH_FROM_OFFICE])
    assert engine.up(reg, preview=True) == "create"
    assert engine.up(reg) == "create"
    out = engine.outputs(reg)
    assert out["rules"] == [{**SSH_FROM_OFFICE, "source_network": "203.0.113.7/32"}]  # normalised as the API does
    ruleset_id = out["ruleset_id"]
    assert engine.up(reg) == "same"
    assert engine.up(_ruleset([{**SSH_FROM_OFFICE, "source_network": "203.0.113.7/32"}])) == "same"

    assert engine.up(_ruleset([SSH_FROM_OFFICE, PING])) == "update"
    live = api.client().firewall.get_ruleset(ruleset_id)
    assert [r.protocol for r in live.rules] == ["tcp", "icmp"]
    assert live.rules[1].port_range is None
    assert engine.up(_ruleset([SSH_FROM_OFFICE, PING], name="sae-fw-2")) == "update"
    assert api.client().firewall.get_ruleset(ruleset_id).name == "sae-fw-2"

    assert engine.up(_ruleset([SSH_FROM_OFFICE, PING], name="sae-fw-2", region="us-west-1")) == "replace"
    assert [(r.name, r.region.name) for r in api.client().firewall.list_rulesets()] == [("sae-fw-2", "us-west-1")]


def test_an_attached_instance_gets_new_rules_without_a_relaunch(api: Api, engine: Engine) -> None:
    fw = _ruleset([SSH_FROM_OFFICE])
    engine.up(fw)
    ruleset_id = engine.outputs(fw)["ruleset_id"]
    regs = key_and_node(region="us-east-1", firewall_ruleset_ids=[ruleset_id])
    for reg in regs.values():
        engine.up(reg)
    instance_id = engine.state[regs["node"].urn].id
    assert api.client().instances.get(instance_id).firewall_ruleset_ids == (ruleset_id,)
    assert engine.up(_ruleset([SSH_FROM_OFFICE, PING])) == "update"
    assert engine.up(regs["node"]) == "same"  # the instance keeps running: rules apply through the ruleset
    assert api.client().firewall.get_ruleset(ruleset_id).instance_ids == (instance_id,)


def test_check_names_the_rule_and_the_fix(api: Api, engine: Engine) -> None:
    bad = [
        {"protocol": "tcp", "port_range": [22, 22], "source_network": "0.0.0.0/0", "description": "ok"},
        {"protocol": "sctp", "port_range": [1, 2], "source_network": "0.0.0.0/0"},
        {"protocol": "icmp", "port_range": [1, 1], "source_network": "0.0.0.0/0"},
        {"protocol": "udp", "port_range": [9000, 80], "source_network": "10.0.0.0/8"},
        {"protocol": "tcp", "port_range": [443, 443], "source_network": "example.com", "note": "x"},
    ]
    with pytest.raises(CheckFailed) as failed:
        engine.up(_ruleset(bad), preview=True)
    text = str(failed.value)
    assert "rules[1].protocol: 'sctp' is not one of tcp, udp, icmp, all" in text
    assert "rules[2].port_range: not allowed for icmp; remove it" in text
    assert "rules[3].port_range: give [min, max] with 1 <= min <= max <= 65535" in text
    assert "rules[4].source_network: 'example.com' is not an IPv4 address or CIDR" in text
    assert "rules[4]: unknown keys ['note']" in text
    assert "rules[0]" not in text
    with pytest.raises(CheckFailed, match="unknown region 'mars-1'"):
        engine.up(_ruleset([PING], region="mars-1"), preview=True)
    assert api.client().firewall.list_rulesets() == []


def test_delete_waits_while_an_instance_using_it_terminates(api: Api, engine: Engine) -> None:
    reg = _ruleset([PING])
    engine.up(reg)
    client = api.client()
    client.ssh_keys.create("k", PUBLIC_KEY)
    instance_id = client.instances.launch(
        LaunchRequest("us-east-1", "gpu_1x_a10", "k", firewall_ruleset_ids=[engine.state[reg.urn].id])
    )
    client.instances.terminate([instance_id])
    with pytest.raises(FirewallRulesetInUse):  # "terminating" still counts as in use
        client.firewall.delete_ruleset(engine.state[reg.urn].id)
    engine.delete(reg.urn)
    assert client.firewall.list_rulesets() == []


def test_refresh_drops_a_ruleset_deleted_outside_pulumi(api: Api, engine: Engine) -> None:
    reg = _ruleset([PING])
    engine.up(reg)
    api.client().firewall.delete_ruleset(engine.state[reg.urn].id)
    assert engine.refresh(reg.urn) == "deleted"
    assert engine.up(reg) == "create"
    assert len(api.client().firewall.list_rulesets()) == 1


def test_a_create_whose_answer_is_lost_adopts_the_new_ruleset_not_an_older_twin(api: Api, engine: Engine) -> None:
    twin = api.client().firewall.create_ruleset("sae-fw", "us-east-1", [])  # same name, listed before our send
    reg = _ruleset([PING])
    api.add_fault(action="drop_response", method="POST", path="^/firewall-rulesets$", count=1)
    assert engine.up(reg) == "create"
    created = [r.id for r in api.client().firewall.list_rulesets() if r.id != twin.id]
    assert created == [engine.state[reg.urn].id]

"""API storms against the real `pulumi` CLI: a first `up` rides out 5xx and 429 storms, and a failure that outlasts
the retries is a message naming the object and the command to run, never an HTML page or a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.providers.emulator_api import Api
from tests.providers.test_cli_stack import Stack

# Key (generated pair) + filesystem + two instances that mount it: every create path the fleet uses.
PROGRAM = """
import pulumi
from lambda_provider.resources import Filesystem, Instance, SshKey

key = SshKey("key")
data = Filesystem("data", region="us-east-1")
nodes = [Instance(f"node-{i}", instance_type="gpu_1x_a10", region="us-east-1", ssh_key_name=key.name,
                  file_system_names=[data.name]) for i in range(2)]
pulumi.export("ready", [n.ready for n in nodes])
pulumi.export("instance_ids", [n.instance_id for n in nodes])
"""
STORMS = {
    "30% 5xx": {"action": "error", "status": 502, "body": "html", "probability": 0.3},
    "50% 429": {"action": "rate_limit", "probability": 0.5},
}


@pytest.fixture
def stack(tmp_path: Path, api: Api) -> Iterator[Stack]:
    # The shipped number of tries (6): the storm must be ridden out by the defaults, not by a test's generosity.
    st = Stack(tmp_path / "project", api, PROGRAM, **{"lambda:retryAttempts": "6"})
    yield st
    api.clear_faults()
    st.kill_orphans()
    st.run("destroy", "--yes", check=False)


def _up_under(api: Api, stack: Stack, rule: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    fault = api.add_fault(**rule)
    try:
        return stack.up(check=False), fault
    finally:
        fired = api.fault(fault["id"])["fired"]
        api.clear_faults()
        fault["fired"] = fired


@pytest.mark.parametrize("storm", STORMS.values(), ids=STORMS.keys())
def test_first_up_succeeds_under_a_storm(api: Api, stack: Stack, storm: dict[str, Any]) -> None:
    result, fault = _up_under(api, stack, storm)
    assert result.returncode == 0, result.stdout + result.stderr
    assert fault["fired"] > 0
    assert stack.outputs()["ready"] == [True, True]
    client = api.client()
    assert len(client.ssh_keys.list()) == 1
    assert len(client.filesystems.list()) == 1
    assert {i["id"] for i in api.live_instances()} == set(stack.outputs()["instance_ids"])


def test_a_failure_past_the_retries_names_the_object_and_the_command(api: Api, stack: Stack) -> None:
    result, _ = _up_under(
        api, stack, {"action": "error", "method": "POST", "path": "^/filesystems$", "status": 502, "body": "html"}
    )
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert "creating filesystem 'data' in us-east-1 failed" in text
    assert "HTTP 502 from /filesystems (HTML error page)" in text
    assert "run `pulumi up` again once it answers" in text
    assert "<html" not in text
    assert "Traceback" not in text
    assert stack.up().returncode == 0  # what the message says to do works once the API answers

"""Nodes Lambda ended outside Pulumi (terminated, preempted, record gone) are replaced by the next plain `pulumi up`,
and the preview says why. The real CLI on the stack of tests/providers/test_cli_stack.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambda_provider.client import NotFound
from lambda_provider.emulator.testing import running_emulator
from tests.providers.conftest import API_KEY, TIME_SCALE
from tests.providers.emulator_api import Api
from tests.providers.host_fixtures import launches_for
from tests.providers.test_cli_stack import Stack


@pytest.fixture
def stack(tmp_path: Path, api: Api) -> Iterator[Stack]:
    yield from _stack(tmp_path / "project", api)


@pytest.fixture
def forgetful_api(tmp_path: Path) -> Iterator[Api]:
    """An emulator that forgets terminated records after about a second (Lambda's 404 for an old id)."""
    config = {"lifecycle": {"terminated_retention_seconds": 200}}  # x TIME_SCALE: 1 s
    with running_emulator(tmp_path / "emulator", time_scale=TIME_SCALE, config=config, api_key=API_KEY) as handle:
        handle.set_rate_limits(False)
        yield Api(handle)


@pytest.fixture
def forgetful_stack(tmp_path: Path, forgetful_api: Api) -> Iterator[Stack]:
    yield from _stack(tmp_path / "project", forgetful_api)


def _stack(root: Path, api: Api) -> Iterator[Stack]:
    st = Stack(root, api)
    yield st
    st.kill_orphans()
    st.run("destroy", "--yes", check=False)


def _live_ids(api: Api) -> set[str]:
    return {i["id"] for i in api.live_instances()}


def _preview(stack: Stack) -> tuple[tuple[str, list[str]], str]:
    """The node's (op, replace reasons) and the preview's diagnostics text."""
    data = json.loads(stack.run("preview", "--json").stdout)
    step = next((s for s in data["steps"] if s["urn"].endswith("::node")), {"op": "same"})  # unchanged: unlisted
    return (step["op"], step.get("replaceReasons") or []), "".join(d["message"] for d in data.get("diagnostics", []))


def _replaced(stack: Stack, api: Api, old_id: str) -> str:
    result = stack.up()
    out = stack.outputs()
    assert out["instance_id"] != old_id
    assert out["ready"] is True
    assert api.client().instances.get(out["instance_id"]).status == "active"
    assert _live_ids(api) == {out["instance_id"]} == {stack.resource_ids()["node"]}
    return result.stdout + result.stderr


def test_terminated_then_preempted_node_is_replaced_by_a_plain_up(api: Api, stack: Stack) -> None:
    stack.up()
    first = stack.outputs()["instance_id"]
    api.client().instances.terminate([first])  # out of band
    api.wait_for(lambda: api.client().instances.get(first).status == "terminated")

    (op, reasons), said = _preview(stack)
    assert op == "replace"
    assert reasons == ["live_status"]
    assert f"node: instance {first} is terminated at Lambda; `pulumi up` replaces it" in said

    _replaced(stack, api, first)
    second = stack.outputs()["instance_id"]
    assert len(launches_for(api, "node")) == 2  # the dead one was never adopted, the new one launched once

    api.control("POST", f"/instances/{second}/status", {"status": "preempted"})
    said = _replaced(stack, api, second)
    assert f"node: instance {second} is preempted at Lambda" in said
    assert api.client().instances.get(second).status == "terminated"  # the replace's delete ended the record
    stack.assert_no_key_anywhere()


def test_unhealthy_node_is_kept_and_the_command_its_warning_gives_replaces_it(api: Api, stack: Stack) -> None:
    stack.up()
    first = stack.outputs()["instance_id"]
    api.control("POST", f"/instances/{first}/status", {"status": "unhealthy"})

    (op, _), said = _preview(stack)
    assert op == "same"
    command = re.search(r"To replace it now: `pulumi up --replace '([^']+)'`", said)
    assert command, said
    steps = json.loads(stack.run("preview", "--json", "--replace", command.group(1)).stdout)["steps"]
    assert next(s["op"] for s in steps if s["urn"].endswith("::node")) == "replace"


def test_node_whose_record_is_gone_is_replaced_by_a_plain_up(forgetful_api: Api, forgetful_stack: Stack) -> None:
    api, stack = forgetful_api, forgetful_stack
    stack.up()
    first = stack.outputs()["instance_id"]
    api.client().instances.terminate([first])
    api.wait_for(lambda: _gone(api, first))

    (op, reasons), said = _preview(stack)
    assert op == "replace"
    assert reasons == ["live_status"]
    assert f"node: instance {first} no longer exists (the API answers 404)" in said
    _replaced(stack, api, first)  # the delete of the gone instance is a no-op


def _gone(api: Api, instance_id: str) -> bool:
    try:
        api.client().instances.get(instance_id)
    except NotFound:
        return True
    return False

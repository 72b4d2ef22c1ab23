"""The real `pulumi` CLI (v3.259.0) on a small stack against the emulator: file backend, passphrase secrets.

Skipped with a loud reason when the pinned CLI is neither on PATH (`make test` puts it there) nor in the
`.toolchain` file that `make setup` writes (tests/pulumi_support.py reads it as a fallback).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.providers.emulator_api import Api
from tests.providers.host_fixtures import PUBLIC_KEY, launches_for
from tests.pulumi_support import PulumiProject, kill_processes_in, require_pulumi

PROGRAM = f'''
import pulumi
from lambda_provider.resources import Instance, SshKey

cfg = pulumi.Config()
key = SshKey("key", public_key="{PUBLIC_KEY}")
node = Instance("node", instance_type=cfg.get("instanceType") or "gpu_1x_a10", region=["us-east-1", "us-west-1"],
                ssh_key_name=key.name, name=cfg.get("nodeName"), boot_timeout_seconds=cfg.get_float("bootTimeout"))
pulumi.export("instance_id", node.instance_id)
pulumi.export("ready", node.ready)
pulumi.export("ip", node.ip)
pulumi.export("ssh_port", node.ssh_port)
'''


class Stack:
    """A throwaway project wired to the emulator; keeps every CLI output for the secret grep."""

    def __init__(self, root: Path, api: Api, program: str = PROGRAM, **config: str) -> None:
        self.api = api
        self.project = PulumiProject.create(root, program, env={"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true"})
        self.transcript: list[str] = []
        pairs = [
            arg
            for key, value in api.stack_config(**config).items()
            if key != "lambda:apiKey"
            for arg in ("--plaintext", f"{key}={value}")
        ]
        self.run("config", "set-all", "--secret", f"lambda:apiKey={api.api_key}", *pairs)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = self.project.run(*args, check=check)
        self.transcript += [proc.stdout, proc.stderr]
        return proc

    def up(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("up", "--yes", "--skip-preview", check=check)

    def outputs(self) -> dict:
        return json.loads(self.run("stack", "output", "--json").stdout)

    def preview_ops(self) -> dict[str, tuple[str, list[str]]]:
        steps = json.loads(self.run("preview", "--json").stdout).get("steps", [])
        return {s["urn"].rsplit("::", 1)[1]: (s["op"], s.get("replaceReasons") or []) for s in steps}

    def resource_ids(self) -> dict[str, str]:
        exported = json.loads(self.run("stack", "export").stdout)
        return {r["urn"].rsplit("::", 1)[1]: r.get("id") for r in exported["deployment"].get("resources", [])}

    def assert_no_key_anywhere(self) -> None:
        texts = [self.project.state_text(), *self.transcript]
        texts += [p.read_text() for p in self.project.root.glob("Pulumi*.yaml")]
        assert all(self.api.api_key not in t for t in texts)

    def kill_orphans(self) -> None:
        """Provider hosts outlive a SIGKILLed CLI (own process group); end the ones started for this project."""
        kill_processes_in(self.project.root)


@pytest.fixture
def stack(tmp_path: Path, api: Api) -> Iterator[Stack]:
    st = Stack(tmp_path / "project", api)
    yield st
    st.kill_orphans()
    st.run("destroy", "--yes", check=False)


def _live_ids(api: Api) -> set[str]:
    return {i["id"] for i in api.live_instances()}


def test_up_noop_rename_replace_refresh_destroy(api: Api, stack: Stack) -> None:
    stack.up()
    out = stack.outputs()
    first = out["instance_id"]
    assert out["ready"] is True
    assert out["ip"]
    assert out["ssh_port"] != 22
    assert _live_ids(api) == {first}

    stack.run("preview", "--expect-no-changes")

    stack.project.config_set("nodeName", "renamed-node")
    assert stack.preview_ops()["node"] == ("update", [])
    stack.up()
    assert stack.outputs()["instance_id"] == first
    assert api.client().instances.get(first).name == "renamed-node"

    stack.project.config_set("instanceType", "gpu_1x_a100_sxm4")
    assert stack.preview_ops()["node"] == ("replace", ["placements"])
    stack.up()
    second = stack.outputs()["instance_id"]
    assert second != first
    assert _live_ids(api) == {second}

    api.client().instances.terminate([second])  # out of band
    stack.run("refresh", "--yes")
    assert "node" not in stack.resource_ids()
    assert _live_ids(api) == set()
    stack.up()
    third = stack.outputs()["instance_id"]
    assert _live_ids(api) == {third} == {stack.resource_ids()["node"]}

    stack.run("destroy", "--yes")
    assert _live_ids(api) == set()
    assert api.client().ssh_keys.list() == []
    stack.assert_no_key_anywhere()


def test_sigkill_during_launch_then_up_again_adopts(api: Api, stack: Stack) -> None:
    api.control("PUT", "/boot", {"hang": "ip"})  # the launch happens, the boot never ends: up is mid-create
    cmd = [require_pulumi(), "up", "--yes", "--skip-preview", "--stack", stack.project.stack, "--non-interactive"]
    proc = subprocess.Popen(
        cmd,
        cwd=stack.project.root,
        env={**os.environ, **stack.project.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        api.wait_for(lambda: len(launches_for(api, "node")) == 1, timeout=60)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        stack.transcript.append(proc.communicate()[0])
        stack.kill_orphans()
    launched = launches_for(api, "node")[0]["id"]
    assert "node" not in stack.resource_ids()  # the engine never learnt the id: only the tags can find it

    api.control("PUT", "/boot", {"hang": None})
    api.control("POST", f"/instances/{launched}/boot", {"hang": None})
    stack.run("cancel", "--yes")  # the killed run still holds the file backend's lock
    result = stack.up()
    assert "pending operations" in result.stdout + result.stderr
    assert stack.outputs()["instance_id"] == launched
    assert [i["id"] for i in launches_for(api, "node")] == [launched]  # adopted, never launched twice
    assert _live_ids(api) == {stack.resource_ids()["node"]}
    stack.assert_no_key_anywhere()


def test_boot_timeout_fails_the_up_but_keeps_the_instance_tracked(api: Api, stack: Stack) -> None:
    api.control("PUT", "/boot", {"hang": "no-ip"})
    stack.project.config_set("bootTimeout", "1")
    failed = stack.up(check=False)
    assert failed.returncode != 0
    assert "tracked in state but not ready" in failed.stdout + failed.stderr
    tracked = stack.resource_ids()["node"]
    assert _live_ids(api) == {tracked}  # nothing bills outside the stack
    assert stack.preview_ops()["node"] == ("update", [])  # preview still works, and plans to wait again

    api.control("PUT", "/boot", {"hang": None})
    api.control("POST", f"/instances/{tracked}/boot", {"hang": None})
    stack.project.config_set("bootTimeout", "60")
    stack.up()
    out = stack.outputs()
    assert out["ready"] is True
    assert out["instance_id"] == tracked
    assert len(launches_for(api, "node")) == 1
    stack.assert_no_key_anywhere()

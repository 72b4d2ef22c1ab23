"""Shared parts of the host-level tests: the key + node stack, the no-orphan invariant, launch counting, the
API-key grep."""

from __future__ import annotations

import base64
from typing import Any

from lambda_provider.resources import Instance, SshKey
from tests.providers.emulator_api import Api
from tests.providers.host_harness import Engine, Registration, registrations

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9oCq5j1k+IV2N0d8pxQ1a2QTzvvl2QxFgUaT4Ebv9z test@sae"


def key_and_node(**instance_args: object) -> dict[str, Registration]:
    """Registrations of an SshKey "key" and an Instance "node" (a gpu_1x_a10 unless told) that uses it."""
    args = {"instance_type": "gpu_1x_a10", **instance_args}

    def define() -> list:
        key = SshKey("key", public_key=PUBLIC_KEY)
        return [key, Instance("node", ssh_key_name=key.name, **args)]  # type: ignore[arg-type]

    return registrations(define)


def assert_converged(api: Api, engine: Engine) -> None:
    """The emulator runs exactly the instances the state tracks: nothing billing outside the stack."""
    live = {i["id"] for i in api.live_instances()}
    tracked = {s.id for urn, s in engine.state.items() if "lambda:Instance::" in urn}
    assert live == tracked, f"live instances {live} != tracked {tracked}"


def launches_for(api: Api, resource: str) -> list[dict[str, Any]]:
    """Every instance ever launched for a resource name (terminated included)."""
    return [
        i
        for i in api.all_instances()
        if any(t["key"] == "pulumi-resource" and t["value"] == resource for t in i.get("tags", []))
    ]


def assert_no_api_key_leak(api: Api, engine: Engine) -> None:
    texts = [engine.dump(), "".join(engine.host.stderr_lines)]
    for st in engine.state.values():
        pickled = st.outputs.get("__provider") or st.inputs.get("__provider")
        if isinstance(pickled, str):
            texts.append(base64.b64decode(pickled).decode("latin-1"))
    for text in texts:
        assert api.api_key not in text

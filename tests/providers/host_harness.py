"""Drive the SDK's own dynamic-provider host (`python -m pulumi.dynamic`) over gRPC, as the engine would.

- `registrations(define)`: run program code (our resource classes) under Pulumi mocks and capture each
  RegisterResource request: the real inputs, including the real dill-serialised `__provider`.
- `ProviderHost`: the host as a subprocess (cwd = repo root, so `lambda_provider` imports by module path).
- `Engine`: the engine's step logic for a set of dynamic resources (check, diff, create/update/replace with
  delete-before-replace, refresh, destroy), keeping a JSON-able state so tests can grep it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pulumi
from google.protobuf import struct_pb2
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT, STACK = "sae", "test"
DIFF = provider_pb2.DiffResponse


def to_struct(props: dict[str, Any]) -> struct_pb2.Struct:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(props, {}))
    finally:
        loop.close()


def from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    return rpc.deserialize_properties(struct, keep_unknowns=True)


def unwrap_secrets(value: Any) -> Any:
    """The engine hands the host plaintext (the host answers acceptSecrets=False)."""
    if rpc.is_rpc_secret(value):
        return unwrap_secrets(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


# --------------------------------------------------------------------------- program side, under mocks
class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class _RecordingMonitor(MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.requests: list[Any] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        self.requests.append(request)
        return super().RegisterResource(request)


@dataclass
class Registration:
    type: str
    name: str
    inputs: dict[str, Any]  # secrets unwrapped, as the engine sends them to the host
    secret_inputs: list[str]
    additional_secret_outputs: list[str]
    delete_before_replace: bool

    @property
    def urn(self) -> str:
        return f"urn:pulumi:{STACK}::{PROJECT}::{self.type}::{self.name}"


def registrations(define: Callable[[], list[pulumi.CustomResource]]) -> dict[str, Registration]:
    """Run `define()` (which constructs our resources) under mocks; return registrations by resource name."""
    mocks = _Mocks()
    monitor = _RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=STACK, preview=False, monitor=monitor)

    @pulumi.runtime.test
    def run() -> pulumi.Output[Any]:
        return pulumi.Output.all(*[r.id for r in define()])

    run()
    out = {}
    for req in monitor.requests:
        if req.type == "pulumi:pulumi:Stack":
            continue
        raw = rpc.deserialize_properties(req.object)
        out[req.name] = Registration(
            type=req.type,
            name=req.name,
            inputs=unwrap_secrets(raw),
            secret_inputs=sorted(k for k, v in raw.items() if rpc.is_rpc_secret(v)),
            additional_secret_outputs=list(req.additionalSecretOutputs),
            delete_before_replace=req.deleteBeforeReplace,
        )
    return out


# --------------------------------------------------------------------------- the host process
class ProviderHost:
    """`python -u -m pulumi.dynamic` as the engine starts it: cwd = program dir, PULUMI_PROJECT set."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = env or {}
        self.stderr_lines: list[str] = []

    def __enter__(self) -> ProviderHost:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDA_", "PYTHONPATH"))}
        env.update(PULUMI_PROJECT=PROJECT, PULUMI_CONFIG="{}", **self.env)
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "pulumi.dynamic", "127.0.0.1:0"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        port = self.proc.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError(f"provider host printed no port: {self.proc.stderr.read()[-3000:]}")
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(self.channel).result(timeout=15)
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)
        return self

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def __exit__(self, *exc: object) -> None:
        self.channel.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()

    def kill(self) -> None:
        """SIGKILL the host mid-call, as when `pulumi up` is killed."""
        self.proc.kill()
        self.proc.wait()

    def configure(self, config: dict[str, Any]) -> provider_pb2.ConfigureResponse:
        """The engine sends the whole stack config, namespaced keys, secrets decrypted."""
        return self.stub.Configure(
            provider_pb2.ConfigureRequest(args=to_struct(config), acceptSecrets=True, acceptResources=True)
        )


# --------------------------------------------------------------------------- the engine's steps
class CheckFailed(Exception):
    def __init__(self, failures: list[tuple[str, str]]) -> None:
        self.failures = failures
        super().__init__("; ".join(f"{p}: {r}" for p, r in failures))


@dataclass
class ResourceState:
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


@dataclass
class Engine:
    host: ProviderHost
    state: dict[str, ResourceState] = field(default_factory=dict)  # by URN
    calls: list[str] = field(default_factory=list)

    @property
    def stub(self) -> provider_pb2_grpc.ResourceProviderStub:
        return self.host.stub

    def check(self, reg: Registration, olds: dict[str, Any] | None = None) -> dict[str, Any]:
        self.calls.append("Check")
        if olds is None:
            old = self.state.get(reg.urn)
            olds = old.inputs if old else {}
        resp = self.stub.Check(provider_pb2.CheckRequest(urn=reg.urn, olds=to_struct(olds), news=to_struct(reg.inputs)))
        if resp.failures:
            raise CheckFailed([(f.property, f.reason) for f in resp.failures])
        return from_struct(resp.inputs)

    def diff(self, reg: Registration, checked: dict[str, Any]) -> provider_pb2.DiffResponse:
        self.calls.append("Diff")
        old = self.state[reg.urn]
        return self.stub.Diff(
            provider_pb2.DiffRequest(
                id=old.id,
                urn=reg.urn,
                olds=to_struct(old.outputs),
                old_inputs=to_struct(old.inputs),
                news=to_struct(checked),
            )
        )

    def create(self, reg: Registration, checked: dict[str, Any], timeout: float | None = None) -> ResourceState:
        self.calls.append("Create")
        resp = self.stub.Create(provider_pb2.CreateRequest(urn=reg.urn, properties=to_struct(checked)), timeout=timeout)
        st = ResourceState(resp.id, checked, from_struct(resp.properties))
        self.state[reg.urn] = st
        return st

    def delete(self, urn: str) -> None:
        self.calls.append("Delete")
        st = self.state[urn]
        self.stub.Delete(
            provider_pb2.DeleteRequest(
                id=st.id, urn=urn, properties=to_struct(st.outputs), old_inputs=to_struct(st.inputs)
            )
        )
        del self.state[urn]

    def up(self, reg: Registration, *, preview: bool = False) -> str:
        """One resource's step in `pulumi up` (or preview): create, same, update or replace."""
        checked = self.check(reg)
        if reg.urn not in self.state:
            if not preview:
                self.create(reg, checked)
            return "create"
        resp = self.diff(reg, checked)
        if resp.changes == DIFF.DIFF_UNKNOWN:
            raise AssertionError("our providers always answer a definite diff")
        if resp.changes == DIFF.DIFF_NONE:
            if not preview:
                self.state[reg.urn].inputs = checked  # SameStep: new inputs, old outputs
            return "same"
        if list(resp.replaces):
            checked = self.check(reg, olds={})  # the engine re-checks a replacement with no olds
            if preview:
                return "replace"
            if resp.deleteBeforeReplace or reg.delete_before_replace:
                self.delete(reg.urn)
                self.create(reg, checked)
            else:
                old = self.state.pop(reg.urn)
                self.create(reg, checked)
                self.calls.append("Delete")
                self.stub.Delete(provider_pb2.DeleteRequest(id=old.id, urn=reg.urn, properties=to_struct(old.outputs)))
            return "replace"
        if preview:
            return "update"
        self.calls.append("Update")
        old = self.state[reg.urn]
        resp_u = self.stub.Update(
            provider_pb2.UpdateRequest(
                id=old.id,
                urn=reg.urn,
                olds=to_struct(old.outputs),
                old_inputs=to_struct(old.inputs),
                news=to_struct(checked),
            )
        )
        self.state[reg.urn] = ResourceState(old.id, checked, from_struct(resp_u.properties))
        return "update"

    def refresh(self, urn: str) -> str:
        self.calls.append("Read")
        st = self.state[urn]
        resp = self.stub.Read(
            provider_pb2.ReadRequest(id=st.id, urn=urn, properties=to_struct(st.outputs), inputs=to_struct(st.inputs))
        )
        if not resp.id:
            del self.state[urn]
            return "deleted"
        inputs = from_struct(resp.inputs) if resp.HasField("inputs") else st.inputs
        self.state[urn] = ResourceState(resp.id, inputs, from_struct(resp.properties))
        return "refreshed"

    def destroy(self) -> None:
        for urn in reversed(list(self.state)):
            self.delete(urn)

    def outputs(self, reg: Registration) -> dict[str, Any]:
        return self.state[reg.urn].outputs

    def dump(self) -> str:
        """The state as JSON text (what a checkpoint file would hold, before secret encryption)."""
        return json.dumps(
            {u: {"id": s.id, "inputs": s.inputs, "outputs": s.outputs} for u, s in self.state.items()}, default=str
        )

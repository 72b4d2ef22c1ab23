"""Fixtures of the emulator tests: a contract-checking API caller and SSH helpers."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncssh
import pytest

from lambda_provider.emulator.testing import ApiResponse, EmulatorHandle, wait_for

from .contract import validate_response

# Statuses the spec does not declare but the emulator sends on purpose (rate limits, faults, 405 quirk).
UNDECLARED_OK = {405, 429, 500, 502, 503, 504}


@dataclass
class CheckedApi:
    """Calls the emulator's public API and validates every JSON body against the OpenAPI 1.10.0 schemas."""

    emu: EmulatorHandle
    validated: list[tuple[str, str, int]] = field(default_factory=list)

    def __call__(self, method: str, path: str, body: Any = None, **kwargs: Any) -> ApiResponse:
        response = self.emu.api(method, path, body, **kwargs)
        full_path = urlsplit(self.emu.base_url).path + path.split("?")[0]
        declared = validate_response(method, full_path, response.status, response.body)
        assert declared or response.status in UNDECLARED_OK, (
            f"{method} {path} answered {response.status}, which the spec does not declare: {response.body}"
        )
        if declared:
            self.validated.append((method, full_path, response.status))
        return response

    def ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        response = self(method, path, body, **kwargs)
        assert response.status == 200, f"{method} {path} -> {response.status} {response.body}"
        return response.body["data"]

    def error(self, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, str, str]:
        response = self(method, path, body, **kwargs)
        assert response.status != 200, f"{method} {path} unexpectedly succeeded: {response.body}"
        error = response.body["error"]
        return response.status, error["code"], error["message"]

    # ------------------------------------------------------------------ common flows
    def add_key(self, name: str = "test-key") -> asyncssh.SSHKey:
        key = asyncssh.generate_private_key("ssh-ed25519")
        self.ok("POST", "/ssh-keys", {"name": name, "public_key": key.export_public_key().decode()})
        return key

    def launch(
        self, key_name: str = "test-key", instance_type: str = "gpu_1x_gh200", region: str = "us-east-3", **extra: Any
    ) -> str:
        body = {"region_name": region, "instance_type_name": instance_type, "ssh_key_names": [key_name], **extra}
        return self.ok("POST", "/instance-operations/launch", body)["instance_ids"][0]

    def instance(self, instance_id: str) -> dict[str, Any]:
        return self.ok("GET", f"/instances/{instance_id}")

    def wait_status(self, instance_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
        return wait_for(
            lambda: _with_status(self.instance(instance_id), status),
            timeout,
            f"instance {instance_id} never reached {status}",
        )

    def terminate(self, *ids: str) -> list[dict[str, Any]]:
        return self.ok("POST", "/instance-operations/terminate", {"instance_ids": list(ids)})["terminated_instances"]


def _with_status(record: dict[str, Any], status: str) -> dict[str, Any] | None:
    return record if record["status"] == status else None


@pytest.fixture
def api(emulator: EmulatorHandle) -> Iterator[CheckedApi]:
    yield CheckedApi(emulator)


def ssh_run(
    record: dict[str, Any],
    key: asyncssh.SSHKey,
    command: str,
    *,
    username: str = "ubuntu",
    timeout: float = 30,
    input: str | None = None,
) -> asyncssh.SSHCompletedProcess:
    """Run one command on an instance over real SSH (asyncssh client)."""

    async def run() -> asyncssh.SSHCompletedProcess:
        async with asyncssh.connect(
            record["ip"],
            port=record.get("ssh_port", 22),
            username=username,
            client_keys=[key],
            known_hosts=None,
            connect_timeout=10,
        ) as conn:
            return await conn.run(command, check=False, timeout=timeout, input=input)

    return asyncio.run(run())


def process_alive(pid: int) -> bool:
    """Whether `pid` still runs; a zombie waiting for its parent counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True

"""A node that answers and refuses our key (over real SSH, the emulator's server): fatal at once, not retried until the
ready timeout, naming the node's address, our key's fingerprint and the fix."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncssh
import pytest

from lambda_provider.emulator.testing import EmulatorHandle
from lambda_provider.fleet.node_step import NodeStepProvider
from lambda_provider.fleet.remote import AuthenticationRefused, Connection, connect
from tests.emulator.conftest import CheckedApi

READY_TIMEOUT = 120.0  # what a stack could set; the refusal must not wait for it


@pytest.fixture
def node(emulator: EmulatorHandle) -> Connection:
    """An active node launched with one key; the connection carries none yet."""
    api = CheckedApi(emulator)
    api.add_key()
    record = api.wait_status(api.launch(instance_type="gpu_1x_a10", region="us-east-1"), "active")
    return Connection(record["ip"], record["ssh_port"], "ubuntu")


@pytest.fixture
def wrong_key_file(tmp_path: Path) -> tuple[Path, asyncssh.SSHKey]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    path = tmp_path / "not-the-registered-key"
    path.write_bytes(key.export_private_key())
    return path, key


async def _connect(conn: Connection) -> None:
    ssh = await connect(conn, READY_TIMEOUT)
    ssh.close()


def test_a_refused_key_file_fails_at_once_naming_node_key_and_fix(
    node: Connection, wrong_key_file: tuple[Path, asyncssh.SSHKey]
) -> None:
    path, key = wrong_key_file
    conn = Connection(node.host, node.port, node.user, private_key_path=str(path))
    start = time.monotonic()
    with pytest.raises(AuthenticationRefused) as info:
        asyncio.run(_connect(conn))
    assert time.monotonic() - start < 10, "a refused key is not retried until the ready timeout"
    message = str(info.value)
    assert f"ubuntu@{node.host}:{node.port} refused the private key sshKey.privateKeyPath {path}" in message
    assert f"(key {key.get_fingerprint()})" in message
    assert "sshKey.publicKeyPath) and sshKey.privateKeyPath must be a pair" in message
    assert f"ssh-keygen -y -f {path}" in message


def test_a_refused_generated_key_says_the_instance_has_another_key(node: Connection) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    conn = Connection(node.host, node.port, node.user, private_key=key.export_private_key().decode())
    with pytest.raises(AuthenticationRefused, match=r"generated private key .*`pulumi up --replace <its URN>`"):
        asyncio.run(_connect(conn))


def test_the_ready_gate_records_the_refusal_at_once(
    node: Connection, wrong_key_file: tuple[Path, asyncssh.SSHKey]
) -> None:
    path, key = wrong_key_file
    props = {
        "node": "node-0",
        "step": "ready gate",
        "create": "true",
        "environment": {},
        "requires": [],
        "timeout_seconds": 120,
        "connect_timeout_seconds": READY_TIMEOUT,
        "connection": {
            "host": node.host,
            "port": node.port,
            "user": "ubuntu",
            "private_key": None,
            "private_key_path": str(path),
            "ready": True,
            "status": "active",
        },
    }
    start = time.monotonic()
    outs = NodeStepProvider().create(props).outs
    assert time.monotonic() - start < 10, "the ready gate does not wait out its timeout on a refused key"
    assert outs["ok"] is False
    assert outs["error"].startswith(f"node node-0: ready gate: ubuntu@{node.host}:{node.port} refused")
    assert key.get_fingerprint() in outs["error"]

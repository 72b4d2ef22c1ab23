"""Host keys over real SSH (the emulator's server): first use records the key, a pinned key is checked, a wrong key
fails at once without logging in."""

from __future__ import annotations

import asyncio
import time

import asyncssh
import pytest

from lambda_provider.emulator.testing import EmulatorHandle
from lambda_provider.fleet.remote import Connection, HostKeyMismatch, connect, run_on, server_host_key
from tests.emulator.conftest import CheckedApi


@pytest.fixture
def node(emulator: EmulatorHandle) -> Connection:
    api = CheckedApi(emulator)
    key = api.add_key()
    record = api.wait_status(api.launch(instance_type="gpu_1x_a10", region="us-east-1"), "active")
    private = key.export_private_key().decode()
    return Connection(record["ip"], record["ssh_port"], "ubuntu", private)


async def _seen_key(conn: Connection) -> tuple[str | None, int]:
    ssh = await connect(conn, 20)
    async with ssh:
        return server_host_key(ssh), (await run_on(ssh, "true")).exit_status


def test_first_use_records_the_key_and_pinning_it_connects(node: Connection) -> None:
    conn = node
    seen, status = asyncio.run(_seen_key(conn))
    assert status == 0, f"`true` on the node exited {status}"
    assert seen, "no host key recorded on first use"
    assert seen.startswith("ssh-"), seen
    pinned = Connection(conn.host, conn.port, conn.user, conn.private_key, host_key=seen)
    assert asyncio.run(_seen_key(pinned)) == (seen, 0)


def test_another_key_fails_at_once_and_says_what_to_do(node: Connection) -> None:
    conn = node
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    pinned = Connection(conn.host, conn.port, conn.user, conn.private_key, host_key=impostor)
    start = time.monotonic()
    with pytest.raises(HostKeyMismatch, match=r"another SSH host key .*not connecting.*`pulumi up --replace`"):
        asyncio.run(_seen_key(pinned))
    assert time.monotonic() - start < 10, "a mismatch is not retried until the connect timeout"

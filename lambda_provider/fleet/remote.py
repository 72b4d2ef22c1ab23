"""Run commands on a node over real SSH (asyncssh): connect with backoff until a deadline, bounded output capture.

Host keys are trusted on first use, per instance: nodes are fresh machines whose host keys nobody knows in advance
(Lambda's API does not publish them), so a node's ready gate records the key it sees and every later connection to that
instance (setup, launch, the run's wait, refresh, destroy) pins it. A new instance gets a new ready gate.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

OUTPUT_TAIL_CHARS = 3000


class NodeUnreachable(RuntimeError):
    pass


class AuthenticationRefused(RuntimeError):
    """The node answered and refused our key: never retried (it is not a node still booting)."""


class HostKeyMismatch(RuntimeError):
    """The node answered with another host key than the one pinned for it: never retried, never logged into."""


@dataclass(frozen=True)
class Connection:
    host: str
    port: int = 22
    user: str = "ubuntu"
    private_key: str | None = None
    private_key_path: str | None = None
    host_key: str | None = None  # the node's public host key (OpenSSH line) to pin; None: trust on first use

    @classmethod
    def from_props(cls, raw: dict[str, Any]) -> Connection:
        return cls(
            str(raw["host"]),
            int(raw.get("port") or 22),
            str(raw.get("user") or "ubuntu"),
            raw.get("private_key") or None,
            raw.get("private_key_path") or None,
            raw.get("host_key") or None,
        )

    def client_key(self) -> asyncssh.SSHKey:
        if self.private_key:
            return asyncssh.import_private_key(self.private_key)
        if self.private_key_path:
            return asyncssh.read_private_key(str(Path(self.private_key_path).expanduser()))
        raise ValueError("connection has neither private_key nor private_key_path")

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class RemoteResult:
    exit_status: int
    output_tail: str  # stdout and stderr interleaved, last OUTPUT_TAIL_CHARS characters


async def connect(conn: Connection, timeout: float) -> asyncssh.SSHClientConnection:
    """Retry with backoff (0.5 s doubling to 5 s) until `timeout`: a booting machine refuses or resets for a while.
    A node that answers and refuses our key (AuthenticationRefused) or shows another host key than the pinned one
    (HostKeyMismatch) fails at once: waiting does not change either."""
    deadline = time.monotonic() + timeout
    delay, last_error = 0.5, "no attempt"
    key = conn.client_key()
    pinned = asyncssh.import_public_key(conn.host_key) if conn.host_key else None
    while True:
        remaining = deadline - time.monotonic()
        try:
            return await asyncssh.connect(
                conn.host,
                conn.port,
                username=conn.user,
                client_keys=[key],
                known_hosts=([pinned], [], []) if pinned else None,
                agent_path=None,
                connect_timeout=max(1.0, min(15.0, remaining)),
            )
        except asyncssh.HostKeyNotVerifiable:
            assert pinned is not None
            raise HostKeyMismatch(
                f"{conn} answered with another SSH host key than the one this instance's ready gate recorded "
                f"({pinned.get_fingerprint()}); not connecting. Either something intercepts the connection, or the "
                "machine was rebuilt under the same instance: then run `pulumi up --replace` on its ready step "
                "(URN ending in -ready) to trust the new key"
            ) from None
        except asyncssh.PermissionDenied:
            raise AuthenticationRefused(refusal(conn, key)) from None
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        if time.monotonic() + delay > deadline:
            raise NodeUnreachable(f"SSH to {conn} did not answer within {timeout:.0f} s (last error: {last_error})")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


def refusal(conn: Connection, key: asyncssh.SSHKey) -> str:
    """Why a node that answered refused our key, and the fix: the key Lambda installed is not our key's other half."""
    if conn.private_key_path:
        ours = f"the private key sshKey.privateKeyPath {conn.private_key_path} (key {key.get_fingerprint()})"
        fix = (
            f"the key registered with Lambda (sshKey.publicKeyPath) and sshKey.privateKeyPath must be a pair: "
            f"point privateKeyPath at the private half of the registered key (`ssh-keygen -y -f "
            f"{conn.private_key_path}` must print the public key publicKeyPath holds), then `pulumi up`"
        )
    else:
        ours = f"the fleet's generated private key (key {key.get_fingerprint()})"
        fix = (
            "the instance was launched with another key than the one in this stack's state: replace the instance "
            "(`pulumi up --replace <its URN>`, see `pulumi stack --show-urns`)"
        )
    return f"{conn} refused {ours} for user {conn.user}; not retried. {fix}"


def server_host_key(ssh: asyncssh.SSHClientConnection) -> str | None:
    key = ssh.get_server_host_key()
    return key.export_public_key("openssh").decode().strip() if key else None


async def run_on(
    ssh: asyncssh.SSHClientConnection, command: str, *, stdin: bytes | None = None, timeout: float = 600.0
) -> RemoteResult:
    tail: deque[str] = deque()
    size = 0
    async with ssh.create_process(command, encoding=None, stderr=asyncssh.STDOUT) as proc:
        if stdin is not None:
            proc.stdin.write(stdin)
        proc.stdin.write_eof()

        async def drain() -> None:
            nonlocal size
            while chunk := await proc.stdout.read(65536):
                text = chunk.decode(errors="replace")
                tail.append(text)
                size += len(text)
                while size - len(tail[0]) > OUTPUT_TAIL_CHARS and len(tail) > 1:
                    size -= len(tail.popleft())

        try:
            await asyncio.wait_for(drain(), timeout=timeout)
            completed = await asyncio.wait_for(proc.wait(check=False), timeout=30)
        except TimeoutError:
            proc.kill()
            return RemoteResult(124, "".join(tail)[-OUTPUT_TAIL_CHARS:] + f"\n[timed out after {timeout:.0f} s]")
    status = completed.exit_status if completed.exit_status is not None else 255
    return RemoteResult(status, "".join(tail)[-OUTPUT_TAIL_CHARS:])


def run(
    conn: Connection, command: str, *, stdin: bytes | None = None, timeout: float = 600.0, connect_timeout: float = 60.0
) -> RemoteResult:
    async def main() -> RemoteResult:
        ssh = await connect(conn, connect_timeout)
        async with ssh:
            return await run_on(ssh, command, stdin=stdin, timeout=timeout)

    return asyncio.run(main())


UPLOAD_EXCLUDES = ("__pycache__", "runs", ".pytest_cache")  # build and run leftovers: never uploaded nor digested


def uploaded(relative: Path) -> bool:
    """Whether a path (relative to the uploaded directory) is part of the upload, and so of its digest."""
    return not any(p in UPLOAD_EXCLUDES or p.endswith(".pyc") for p in relative.parts)


def tar_directory(local_dir: Path) -> bytes:
    """A gzip tarball of `local_dir`'s contents (paths relative to it), without `UPLOAD_EXCLUDES`."""
    buffer = io.BytesIO()

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return info if uploaded(Path(info.name)) else None

    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for child in sorted(local_dir.iterdir()):
            tar.add(child, arcname=child.name, filter=keep)
    return buffer.getvalue()

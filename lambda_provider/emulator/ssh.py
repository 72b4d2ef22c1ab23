"""Per-instance SSH endpoints on loopback, served by asyncssh.

Why asyncssh rather than OpenSSH's sshd: it runs in-process without root, a config file or a privilege-separation
user, binds any number of endpoints (one per instance, each on the instance's own 127.x.y.z address) from one event
loop, and lets us decide per connection which single public key is accepted and how commands are spawned (HOME, PATH
with the fake nvidia-smi, the marker variable that lets terminate find every descendant). It is pinned in
requirements.txt and well maintained.

A session runs `$SHELL -c <command>` (or an interactive `$SHELL -i` without a PTY) as the local user, in its own
process group, with cwd and HOME = the instance's home. When the connection drops, the session's process group
gets SIGHUP like under sshd, so `nohup`/`setsid` children keep running; terminate kills them all.
SFTP and scp (both protocols) are served with the instance root as "/" (so `/home/ubuntu/x` and
`/lambda/nfs/<fs>/x` are the instance's paths); relative paths start in the home directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import posixpath
import pwd
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from .catalog import InstanceTypeSpec
from .instance_fs import InstanceLayout
from .processes import INSTANCE_ENV

log = logging.getLogger("lambda_provider.emulator.ssh")

SSH_USER = "ubuntu"
_PROTECTED_ENV = {"HOME", "PATH", "SHELL", "USER", "LOGNAME", INSTANCE_ENV, "LAMBDA_INSTANCE_ROOT"}


@dataclass
class Endpoint:
    instance_id: str
    host: str
    port: int
    generation: int
    server: Any = None
    connections: set[Any] = field(default_factory=set)
    session_groups: set[int] = field(default_factory=set)


def user_shell() -> str:
    shell = os.environ.get("SHELL")
    if not shell:
        try:
            shell = pwd.getpwuid(os.getuid()).pw_shell
        except KeyError:
            shell = None
    return shell if shell and os.path.exists(shell) else "/bin/sh"


def session_env(
    layout: InstanceLayout, doc: dict[str, Any], spec: InstanceTypeSpec, client_env: dict[str, str]
) -> dict[str, str]:
    instance_id = doc["id"]
    root = layout.root(instance_id)
    env = {k: v for k, v in client_env.items() if k not in _PROTECTED_ENV}
    env.update(
        {
            "HOME": str(layout.home(instance_id)),
            "USER": SSH_USER,
            "LOGNAME": SSH_USER,
            "SHELL": user_shell(),
            "PATH": f"{layout.bin_dir(instance_id)}:{os.environ.get('PATH', '/usr/local/bin:/usr/bin:/bin')}",
            "LANG": env.get("LANG", "C.UTF-8"),
            INSTANCE_ENV: instance_id,
            "LAMBDA_EMULATOR": "1",
            "LAMBDA_INSTANCE_ROOT": str(root),
            "LAMBDA_NFS_ROOT": str(root / "lambda" / "nfs"),
            "LAMBDA_EMULATED_ARCH": spec.uname_machine,
            "LAMBDA_INSTANCE_TYPE": spec.name,
            "LAMBDA_INSTANCE_GPUS": str(spec.gpus),
        }
    )
    return env


def write_python_shims(bin_dir: Path) -> None:
    """`python`/`python3` on the instance run the emulator's interpreter, standing in for Lambda Stack's PyTorch."""
    for name in ("python", "python3"):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        shim.chmod(0o755)


class _InstanceSFTPServer(asyncssh.SFTPServer):
    """SFTP rooted at the instance root; relative paths resolve against /home/ubuntu."""

    def __init__(self, chan: asyncssh.SSHServerChannel, root: Path) -> None:
        super().__init__(chan, chroot=str(root).encode())

    def map_path(self, path: bytes) -> bytes:
        if not path.startswith(b"/"):
            path = posixpath.join(b"/home/ubuntu", path)
        return super().map_path(path)

    def realpath(self, path: bytes) -> bytes:  # no symlink resolution: mounts point outside the root
        if not path.startswith(b"/"):
            path = posixpath.join(b"/home/ubuntu", path)
        return posixpath.normpath(path) if path != b"/" else path

    def exit(self) -> None:
        # asyncssh closes an SFTP channel without an exit status; OpenSSH's ssh then exits non-zero and so does
        # `scp` (SFTP mode, its default since 9.0) after a successful copy. sshd's sftp-server exits 0.
        with contextlib.suppress(asyncssh.Error, OSError):
            self.channel.exit(0)
        super().exit()


class _InstanceSSHServer(asyncssh.SSHServer):
    def __init__(self, endpoint: Endpoint, authorized_key: asyncssh.SSHKey) -> None:
        self._endpoint = endpoint
        self._authorized = authorized_key
        self._conn: Any = None
        self.session_groups: set[int] = set()

    def connection_made(self, conn: Any) -> None:
        self._conn = conn
        self._endpoint.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        self._endpoint.connections.discard(self._conn)
        for pgid in list(self.session_groups):  # like sshd: the session's commands get SIGHUP
            _hangup(pgid)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == SSH_USER and key.public_data == self._authorized.public_data


class SSHEndpoints:
    """Starts and stops the SSH endpoints; all methods are coroutines for the emulator's event loop."""

    def __init__(self, layout: InstanceLayout) -> None:
        self.layout = layout
        self.endpoints: dict[str, Endpoint] = {}

    async def start(self, doc: dict[str, Any], spec: InstanceTypeSpec, preferred_port: int | None) -> Endpoint:
        instance_id = doc["id"]
        write_python_shims(self.layout.bin_dir(instance_id))
        host_key = self._host_key(instance_id)
        authorized = asyncssh.import_public_key(doc["public_key"])
        endpoint = Endpoint(instance_id, doc["ip"], 0, doc["restart_generation"])
        server = None
        for port in ([preferred_port] if preferred_port else []) + [0]:
            try:
                server = await asyncssh.create_server(
                    lambda: _InstanceSSHServer(endpoint, authorized),
                    host=doc["ip"],
                    port=port,
                    server_host_keys=[host_key],
                    process_factory=lambda process: self._run_session(process, doc, spec, endpoint),
                    sftp_factory=lambda chan: _InstanceSFTPServer(chan, self.layout.root(instance_id)),
                    allow_scp=True,
                    encoding=None,
                    reuse_address=True,
                    login_timeout=30,
                )
                break
            except OSError as exc:
                log.info("instance %s: cannot bind %s:%s (%s)", instance_id, doc["ip"], port, exc)
        if server is None:
            raise OSError(f"cannot open an SSH endpoint for instance {instance_id} on {doc['ip']}")
        endpoint.server = server
        endpoint.port = server.sockets[0].getsockname()[1]
        self.endpoints[instance_id] = endpoint
        log.info("instance %s: SSH listening on %s:%d", instance_id, endpoint.host, endpoint.port)
        return endpoint

    async def stop(self, instance_id: str) -> list[int]:
        """Close the listener and every open connection; return the session process groups for killing."""
        endpoint = self.endpoints.pop(instance_id, None)
        if endpoint is None:
            return []
        endpoint.server.close()
        for conn in list(endpoint.connections):
            conn.close()
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(endpoint.server.wait_closed(), timeout=2)
        return list(endpoint.session_groups)

    def _host_key(self, instance_id: str) -> asyncssh.SSHKey:
        path = self.layout.host_key_file(instance_id)
        if path.exists():
            return asyncssh.read_private_key(str(path))
        key = asyncssh.generate_private_key("ssh-ed25519")
        path.parent.mkdir(parents=True, exist_ok=True)
        key.write_private_key(str(path))
        path.chmod(0o600)
        return key

    async def _run_session(
        self, process: asyncssh.SSHServerProcess, doc: dict[str, Any], spec: InstanceTypeSpec, endpoint: Endpoint
    ) -> None:
        shell = user_shell()
        argv = [shell, "-c", process.command] if process.command is not None else [shell, "-i"]
        env = session_env(self.layout, doc, spec, {str(k): str(v) for k, v in (process.env or {}).items()})
        try:
            child = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=env["HOME"],
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            process.stderr.write(f"cannot start {shell}: {exc}\n".encode())
            process.exit(127)
            return
        endpoint.session_groups.add(child.pid)
        connection = process.get_extra_info("connection")
        owner = connection.get_owner()
        owner.session_groups.add(child.pid)
        hangup_watch = asyncio.ensure_future(self._hangup_when_closed(process, child))
        stdin_task = asyncio.ensure_future(self._pump_stdin(process, child))
        try:
            # Like sshd: the session ends when the command exited AND its stdout/stderr reached EOF, so output is
            # never cut short (and a background job that keeps the pipes open keeps the session open, as live).
            await asyncio.gather(
                self._pump_out(child.stdout, process.stdout),
                self._pump_out(child.stderr, process.stderr),
            )
            returncode = await child.wait()
        except (asyncssh.Error, ConnectionError, BrokenPipeError, asyncio.CancelledError):
            _hangup(child.pid)
            raise
        finally:
            stdin_task.cancel()
            if child.returncode is not None:
                hangup_watch.cancel()
            endpoint.session_groups.discard(child.pid)
            owner.session_groups.discard(child.pid)
        with contextlib.suppress(asyncssh.Error, OSError):
            process.exit(returncode if returncode >= 0 else 128 - returncode)

    @staticmethod
    async def _hangup_when_closed(process: asyncssh.SSHServerProcess, child: asyncio.subprocess.Process) -> None:
        """The client went away (channel or whole connection) while the command runs: SIGHUP, like sshd."""
        await process.channel.wait_closed()
        if child.returncode is None:
            _hangup(child.pid)

    @staticmethod
    async def _pump_out(reader: asyncio.StreamReader | None, writer: Any) -> None:
        if reader is None:
            return
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            try:
                writer.write(chunk)
            except (asyncssh.Error, OSError, BrokenPipeError):
                continue  # client went away: keep draining so the child is not blocked on a full pipe

    @staticmethod
    async def _pump_stdin(process: asyncssh.SSHServerProcess, child: asyncio.subprocess.Process) -> None:
        assert child.stdin is not None
        try:
            while True:
                chunk = await process.stdin.read(65536)
                if not chunk:
                    break
                child.stdin.write(chunk)
                await child.stdin.drain()
        except (asyncssh.Error, OSError, BrokenPipeError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(OSError):
                child.stdin.close()


def _hangup(pgid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGHUP)

"""The files that make a stack's printed `ssh` command work with host-key checking on: the generated private key
(0600) where the outputs say, and the pinned host keys as known_hosts lines (the stack's own file and a marked block
in the known_hosts file OpenSSH reads by default) plus an ssh_config with one `Host <stack>-<node>` per node."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lambda_provider.cli.nodes import Fleet, Node


@dataclass(frozen=True)
class SshFiles:
    key: Path
    known_hosts: Path  # the stack's own
    ssh_config: Path
    default_known_hosts: Path | None  # where OpenSSH looks by default and the marked block went; None: no `ssh`


def stack_dir(stack: str) -> Path:
    return Path.home() / ".cache" / "lambda-sae" / stack


def host_pattern(node: Node) -> str:
    return node.ip if node.port == 22 else f"[{node.ip}]:{node.port}"


def known_hosts_lines(fleet: Fleet) -> list[str]:
    return [f"{host_pattern(n)} {n.host_key} lambda-sae:{fleet.stack}:{n.node}" for n in fleet.nodes if n.host_key]


def ssh_config_text(fleet: Fleet, key: Path, known_hosts: Path) -> str:
    blocks = [
        f"# lambda-sae stack {fleet.stack}: `ssh -F {config_path(fleet.stack)} {fleet.stack}-<node>`, or "
        f"`Include {config_path(fleet.stack)}` at the top of ~/.ssh/config\n"
    ]
    for node in fleet.nodes:
        blocks.append(
            f"Host {fleet.stack}-{node.node}\n  HostName {node.ip}\n  Port {node.port}\n  User {node.user}\n"
            f"  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known_hosts}\n"
            "  StrictHostKeyChecking yes\n"
        )
    return "\n".join(blocks)


def config_path(stack: str) -> Path:
    return stack_dir(stack) / "ssh_config"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def default_known_hosts(node: Node) -> Path | None:
    """The first UserKnownHostsFile `ssh` uses for this host (it follows ~/.ssh/config; OpenSSH's `~` is the
    passwd home, not $HOME)."""
    if shutil.which("ssh") is None:
        return None
    shown = subprocess.run(
        ["ssh", "-G", "-p", str(node.port), f"{node.user}@{node.ip}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    for line in shown.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key.lower() == "userknownhostsfile" and value.split():
            return Path(value.split()[0]).expanduser()
    return None


def _markers(stack: str) -> tuple[str, str]:
    return f"# >>> lambda-sae stack {stack} >>>", f"# <<< lambda-sae stack {stack} <<<"


def replace_block(text: str, stack: str, lines: list[str]) -> str:
    """`text` (a known_hosts file) with the stack's marked block replaced by `lines` (removed when empty); other
    entries for the same host:port go too, since a new instance on a reused address has a new key."""
    begin, end = _markers(stack)
    hosts = {line.split(" ", 1)[0] for line in lines}
    kept, inside = [], False
    for line in text.splitlines():
        if line == begin:
            inside = True
        elif line == end:
            inside = False
        elif not inside and line.split(" ", 1)[0] not in hosts:
            kept.append(line)
    if lines:
        kept += [begin, *lines, end]
    return "".join(line + "\n" for line in kept)


def update_default_known_hosts(fleet: Fleet, lines: list[str]) -> Path | None:
    if not fleet.nodes:
        return None
    path = default_known_hosts(fleet.nodes[0])
    if path is None:
        return None
    old = path.read_text() if path.is_file() else ""
    new = replace_block(old, fleet.stack, lines)
    if new != old:
        _write_private(path, new)
    return path


def write(fleet: Fleet) -> SshFiles:
    key = Path(fleet.nodes[0].key_path).expanduser() if fleet.nodes and fleet.nodes[0].key_path else None
    if fleet.private_key:
        key = key or Path.home() / ".ssh" / f"lambda-sae-{fleet.stack}"
        _write_private(key, fleet.private_key if fleet.private_key.endswith("\n") else fleet.private_key + "\n")
    key = key or Path()
    lines = known_hosts_lines(fleet)
    known_hosts = stack_dir(fleet.stack) / "known_hosts"
    _write_private(known_hosts, "".join(line + "\n" for line in lines))
    _write_private(config_path(fleet.stack), ssh_config_text(fleet, key, known_hosts))
    return SshFiles(key, known_hosts, config_path(fleet.stack), update_default_known_hosts(fleet, lines))


def forget(fleet: Fleet) -> None:
    """Drop the stack's block from the default known_hosts (for `destroy`, and tests)."""
    update_default_known_hosts(fleet, [])

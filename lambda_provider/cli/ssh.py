"""`lambda-sae ssh NODE [-- CMD]`: OpenSSH to a node with its pinned host key (StrictHostKeyChecking=yes), after
writing the files the stack's printed `ssh` command needs (ssh_files)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

from lambda_provider.cli import nodes, ssh_files
from lambda_provider.cli.workspace import WorkspaceError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("node", help="node name (node-0), instance name or rank")
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, help="a command to run instead of a login shell (after --)"
    )


def run(args: argparse.Namespace) -> int:
    fleet = nodes.load(args.stack)
    node = fleet.node(args.node)
    fleet.connection(node)  # refuses a node without a pinned host key, with the fix
    files = ssh_files.write(fleet)
    where = f" and {files.default_known_hosts}" if files.default_known_hosts else ""
    print(
        f"lambda-sae ssh: pinned host keys in {files.known_hosts}{where}; key {files.key}; "
        f"ssh_config {files.ssh_config}",
        file=sys.stderr,
    )
    if shutil.which("ssh") is None:
        raise WorkspaceError("no `ssh` on PATH: install OpenSSH's client (e.g. apt install openssh-client)")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    argv = [
        "ssh",
        "-i",
        str(files.key),
        "-p",
        str(node.port),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={files.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        f"{node.user}@{node.ip}",
        *command,
    ]
    return subprocess.call(argv)

"""`lambda-sae logs [-f] [NODE]`: a node's training log (`<run dir>/logs/node-<rank>.log`; default the head), with
-f followed until the node's trainer stops (or Ctrl-C)."""

from __future__ import annotations

import argparse
import sys

import asyncssh

from lambda_provider.cli import nodes, progress

NO_LOG_EXIT = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("node", nargs="?", help="node name (node-0), instance name or rank (default: the head)")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines while the run runs")
    parser.add_argument("-n", "--lines", type=int, default=50, help="lines of history to show first (default 50)")


def log_command(fleet: nodes.Fleet, node: nodes.Node, lines: int, follow: bool) -> str:
    script = (
        nodes.run_path_env(fleet, node) + 'f="$RUN/logs/node-$RANK.log"; '
        f'[ -f "$f" ] || {{ echo "no log at $f yet" >&2; exit {NO_LOG_EXIT}; }}; '
    )
    if not follow:
        return script + f'tail -n {int(lines)} "$f"'
    still_running = f"{progress.status_command(fleet, node)} | grep -q '\"running\": true'"
    return script + (
        f'tail -n {int(lines)} -F "$f" 2>/dev/null & t=$!; '
        f"while {still_running}; do sleep 2; done; sleep 1; kill $t 2>/dev/null; "
        'echo "--- the trainer on this node is not running (any more): done following" >&2'
    )


def run(args: argparse.Namespace) -> int:
    fleet = nodes.load(args.stack)
    node = fleet.node(args.node)
    command = log_command(fleet, node, args.lines, args.follow)

    async def stream(ssh: asyncssh.SSHClientConnection) -> int:
        async with ssh.create_process(command, encoding=None) as proc:
            proc.stdin.write_eof()
            while chunk := await proc.stdout.read(65536):
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            completed = await proc.wait(check=False)
            error = (await proc.stderr.read()).decode(errors="replace").strip()
        if error:
            print(f"lambda-sae logs: node {node.node}: {error}", file=sys.stderr)
        if completed.exit_status == NO_LOG_EXIT:
            print(
                f"  the trainer has not started on {node.node}: see `lambda-sae status --stack {fleet.stack}`",
                file=sys.stderr,
            )
        return completed.exit_status if completed.exit_status is not None else 255

    return nodes.on_node(fleet, node, stream)

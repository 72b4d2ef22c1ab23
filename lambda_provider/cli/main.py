"""The `lambda-sae` dispatcher: one module per verb, imported only when that verb runs."""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from lambda_provider.cli.workspace import WorkspaceError
from lambda_provider.client import LambdaError

VERBS = {
    "up": "lambda_provider.cli.up",
    "preview": "lambda_provider.cli.preview",
    "refresh": "lambda_provider.cli.refresh",
    "destroy": "lambda_provider.cli.destroy",
    "instances": "lambda_provider.cli.instances",
    "reap": "lambda_provider.cli.reap",
    "restart": "lambda_provider.cli.restart",
    "status": "lambda_provider.cli.status",
    "logs": "lambda_provider.cli.logs",
    "ssh": "lambda_provider.cli.ssh",
    "pull": "lambda_provider.cli.pull",
    "cost": "lambda_provider.cli.cost",
}
HELP = {
    "up": "create or update the stack, with a live view of the nodes and the training",
    "preview": "show what `up` would change and cost",
    "refresh": "read every resource back from Lambda into the state",
    "destroy": "tear the stack down, then check the account for anything left billing",
    "instances": "every instance and filesystem in the account, with its owner (or orphan) and cost",
    "reap": "terminate orphaned instances (never one a stack owns)",
    "restart": "restart one node through the API",
    "status": "nodes, phase, live training progress, spent so far, expiry",
    "logs": "a node's training log",
    "ssh": "SSH to a node (host keys pinned)",
    "pull": "download the trained SAE and its metrics",
    "cost": "live prices, the plan's worst case, spent so far",
}


def verb_module(verb: str) -> ModuleType:
    return importlib.import_module(VERBS[verb])


def parser_for(verb: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"lambda-sae {verb}", description=HELP[verb])
    parser.add_argument("--stack", default="dev", help="the Pulumi stack (Pulumi.<stack>.yaml; default dev)")
    verb_module(verb).add_arguments(parser)
    parser.set_defaults(verb=verb)
    return parser


def usage() -> str:
    lines = ["usage: lambda-sae VERB [--stack STACK] [options]", "", "verbs:"]
    lines += [f"  {verb:<10} {HELP[verb]}" for verb in VERBS]
    lines += ["", "`lambda-sae VERB --help` shows a verb's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"lambda-sae: unknown verb {verb!r}\n\n{usage()}", file=sys.stderr)
        return 2
    try:
        args = parser_for(verb).parse_args(rest)
        return int(verb_module(verb).run(args))
    except WorkspaceError as exc:
        print(f"lambda-sae {verb}: {exc}", file=sys.stderr)
        return 2
    except LambdaError as exc:
        print(f"lambda-sae {verb}: the Lambda API call failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lambda-sae {verb}: interrupted", file=sys.stderr)
        return 130

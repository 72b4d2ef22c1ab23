"""Trainer paths on the filesystem as this node sees them.

A trainer config names data and outputs on the fleet's filesystem by its live mount point, `/lambda/nfs/<fs>/...`,
on real Lambda and on the emulator alike. On the emulator every instance's "/" is `$LAMBDA_INSTANCE_ROOT` (a
directory on the host), so the mount lives under it: `on_node` prefixes that root to every string under
`/lambda/nfs/` in a config (any key, inside lists and mappings too, globs included). Where the variable is unset (a
real instance) nothing changes.

  python -m training.node_paths CONFIG.yaml    rewrite the file in place (the fleet's launcher does, on the node)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml

MOUNT_PREFIX = "/lambda/nfs/"


def on_node(value: Any, root: str | None = None) -> Any:
    root = os.environ.get("LAMBDA_INSTANCE_ROOT") if root is None else root
    if not root:
        return value
    if isinstance(value, str):
        return root.rstrip("/") + value if value.startswith(MOUNT_PREFIX) else value
    if isinstance(value, list):
        return [on_node(v, root) for v in value]
    if isinstance(value, dict):
        return {k: on_node(v, root) for k, v in value.items()}
    return value


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m training.node_paths CONFIG.yaml", file=sys.stderr)
        return 2
    path = Path(argv[0])
    config = yaml.safe_load(path.read_text()) or {}
    path.write_text(yaml.safe_dump(on_node(config), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Which stacks a change touches, as a JSON list for a workflow matrix.

usage: python -m lambda_provider.gitops.changed_stacks --base origin/main [--head HEAD]
A changed `Pulumi.<stack>.yaml` touches that stack; a change to the program (anything else but docs, tests and
workflows) touches every stack that has a `Pulumi.<stack>.yaml`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
NOT_THE_PROGRAM = ("docs/", "tests/", ".github/", "README.md")


def stacks_touched(changed: list[str], all_stacks: list[str]) -> list[str]:
    touched: list[str] = []
    for path in changed:
        name = Path(path).name
        if "/" not in path and name.startswith("Pulumi.") and name.endswith(".yaml") and name != "Pulumi.yaml":
            touched.append(name[len("Pulumi.") : -len(".yaml")])
        elif not path.startswith(NOT_THE_PROGRAM):
            return sorted(all_stacks)
    return sorted(s for s in dict.fromkeys(touched) if s in all_stacks)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lambda_provider.gitops.changed_stacks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--base", required=True)
    parser.add_argument("--head", default="HEAD")
    args = parser.parse_args()
    diff = subprocess.run(
        ["git", "diff", "--name-only", f"{args.base}...{args.head}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    stacks = [p.name[len("Pulumi.") : -len(".yaml")] for p in REPO_ROOT.glob("Pulumi.*.yaml")]
    print(json.dumps(stacks_touched(diff, stacks)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

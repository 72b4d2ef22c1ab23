"""PR step: preview one stack and write the PR comment body (cost + capacity table above the diff).

usage: python -m lambda_provider.gitops.pr_preview --stack dev [--cwd DIR] [--policy-pack policy] [--out comment.md]
Runs `pulumi preview --json` (for the table) and `pulumi preview --diff` (for the reviewer), both with the policy
pack when given. Exit 1 when a preview fails (a policy blocks it, a check fails) or when the change would delete a
filesystem that is not retained (unless --allow-filesystem-deletion NAME): the comment is written either way.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from lambda_provider.gitops.capacity import fetch_catalogue
from lambda_provider.gitops.markdown import render_stack
from lambda_provider.gitops.policy_config import cap_from_env, policy_config
from lambda_provider.gitops.preview import PreviewError, parse_preview
from lambda_provider.gitops.pulumi_cli import pulumi, stack_config
from lambda_provider.gitops.summary import summarize

MARKER = "<!-- lambda-sae:pulumi-preview -->"
MAX_DIFF_CHARS = 50_000  # a GitHub comment holds at most 65,536 characters
# An encoded value (base64 of a config, a script, a pickle) says nothing to a reviewer and eats the comment's room.
ENCODED = re.compile(r"[A-Za-z0-9+/]{80,}={0,2}")


def without_encoded_values(text: str) -> str:
    """The diff with each long base64 run replaced by a note of its length (the plain value is in the table or the
    diff next to it)."""
    return ENCODED.sub(lambda m: f"<{len(m.group(0))} characters of base64, not shown>", text)


def preview_args(stack: str, cwd: Path, policy_pack: Path | None, allow: list[str], tmp: Path) -> list[str]:
    if policy_pack is None:
        return []
    config_file = tmp / "policy-config.json"
    config_file.write_text(json.dumps(policy_config(stack_config(stack, cwd), allow, cap_from_env())))
    return ["--policy-pack", str(policy_pack.resolve()), "--policy-pack-config", str(config_file)]


def comment(stack: str, table: str, diff_ok: bool, diff_text: str, blocked: list[str]) -> str:
    status = "✅ preview succeeded" if diff_ok and not blocked else "❌ preview blocked"
    diff_text = without_encoded_values(diff_text)
    diff_text = diff_text if len(diff_text) <= MAX_DIFF_CHARS else diff_text[:MAX_DIFF_CHARS] + "\n... (truncated)"
    parts = [MARKER, f"## `pulumi preview` of stack `{stack}`: {status}", "", table]
    parts += [f"❌ {reason}" for reason in blocked]
    parts += [
        "",
        "<details open><summary><code>pulumi preview --diff</code></summary>",
        "",
        "```diff",
        diff_text.rstrip(),
        "```",
        "",
        "</details>",
        "",
    ]
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lambda_provider.gitops.pr_preview", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--stack", required=True)
    parser.add_argument("--cwd", type=Path, default=Path.cwd(), help="the Pulumi project directory")
    parser.add_argument("--policy-pack", type=Path)
    parser.add_argument("--allow-filesystem-deletion", nargs="*", default=[])
    parser.add_argument("--out", type=Path, help="write the comment here (default: stdout)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        extra = preview_args(args.stack, args.cwd, args.policy_pack, args.allow_filesystem_deletion, Path(tmp))
        as_json = pulumi("preview", "--json", "--show-sames", *extra, stack=args.stack, cwd=args.cwd)
        as_diff = pulumi("preview", "--diff", *extra, stack=args.stack, cwd=args.cwd)
    blocked: list[str] = []
    try:
        plan = parse_preview(as_json.stdout)
        catalogue, warning = fetch_catalogue(os.environ.get("LAMBDA_API_KEY"), os.environ.get("LAMBDA_API_URL"))
        summary = summarize(plan, catalogue, cap_usd_per_hour=cap_from_env())
        table = render_stack(summary) + (f"\n_{warning}_\n" if warning else "")
        blocked += [
            f"filesystem `{n}` would be deleted; pass --allow-filesystem-deletion {n} if that is intended"
            for n in summary.filesystem_deletions
            if n not in args.allow_filesystem_deletion
        ]
    except PreviewError as exc:
        table = f"cost table unavailable: {exc}\n"
    if not as_json.ok or not as_diff.ok:
        blocked.append(f"`pulumi preview` exited {as_diff.returncode or as_json.returncode}")
    body = comment(args.stack, table, as_diff.ok, as_diff.output, blocked)
    if args.out:
        args.out.write_text(body)
    else:
        sys.stdout.write(body)
    return 1 if blocked else 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m lambda_provider.gitops.plan PREVIEW.json [...]`: the cost and capacity table of each preview, in Markdown.

Capacity and prices come from `GET /instance-types` (LAMBDA_API_URL, LAMBDA_API_KEY); without a key the table
still shows the change, with prices from the stack state only.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lambda_provider.gitops.capacity import fetch_catalogue
from lambda_provider.gitops.markdown import render
from lambda_provider.gitops.preview import PreviewError, parse_preview
from lambda_provider.gitops.summary import summarize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambda_provider.gitops.plan", description=__doc__.splitlines()[0])
    parser.add_argument("previews", nargs="+", help="files holding `pulumi preview --json` output ('-' = stdin)")
    parser.add_argument("--max-hours", type=float, help="override the stack's lambda-sae:budget.maxHours")
    args = parser.parse_args(argv)
    catalogue, warning = fetch_catalogue(os.environ.get("LAMBDA_API_KEY"), os.environ.get("LAMBDA_API_URL"))
    summaries = []
    for source in args.previews:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
        try:
            plan = parse_preview(text)
        except PreviewError as exc:
            print(f"error: {source}: {exc}", file=sys.stderr)
            return 2
        summaries.append(summarize(plan, catalogue, max_hours=args.max_hours))
    out = render(summaries)
    if warning:
        out += f"\n_{warning}_\n"
    sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

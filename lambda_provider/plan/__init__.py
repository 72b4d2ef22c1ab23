"""Cost and capacity of a `pulumi preview --json`: what a change adds, replaces and removes, and what it costs.

`python -m lambda_provider.plan PREVIEW.json` prints one Markdown table per stack (the PR comment carries it above
the diff). `policies` holds the validators of the policy pack in ../../policy/.
"""

from lambda_provider.plan.preview import NodeChange, PreviewPlan, parse_preview
from lambda_provider.plan.summary import StackSummary, summarize

__all__ = ["NodeChange", "PreviewPlan", "StackSummary", "parse_preview", "summarize"]

"""The Markdown a reviewer reads: one table per stack, totals, budget, and what would be deleted."""

from __future__ import annotations

from lambda_provider.gitops.summary import StackSummary

CHANGE_LABEL = {
    "added": "➕ added",
    "replaced": "♻️ replaced",
    "removed": "➖ removed",
    "updated": "✏️ updated",
    "unchanged": "unchanged",
}


def _usd(cents: int | None) -> str:
    return "–" if cents is None else f"${cents / 100:.2f}"


def error_headline(error: str) -> str:
    """The message up to its first blank line (a config error's list of problems, not the schema after it)."""
    head = error.strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in head.splitlines()[:6] if line.strip())


def render_stack(summary: StackSummary) -> str:
    lines = [f"### Stack `{summary.stack or '?'}`: cost and capacity", ""]
    counts = ", ".join(f"{summary.count(c)} {c}" for c in ("added", "replaced", "removed"))
    lines.append(f"Nodes: {counts}.")
    lines.append("")
    if summary.rows:
        lines += [
            "| change | node | type | region | capacity now | $/h before | $/h after |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in summary.rows:
            lines.append(
                f"| {CHANGE_LABEL.get(r.change, r.change)} | `{r.name}` | `{r.instance_type}` | "
                f"{r.region} | {r.capacity} | {_usd(r.cents_before)} | {_usd(r.cents_after)} |"
            )
        lines.append("")
    else:
        lines += ["No Lambda instances in this stack.", ""]
    before, after = summary.usd_per_hour_before, summary.usd_per_hour_after
    delta = after - before
    lines.append(f"**$/hour:** ${before:.2f} → ${after:.2f} ({'+' if delta >= 0 else '−'}${abs(delta):.2f})")
    if summary.projected_usd is None:
        lines.append("**Projected:** unknown (set `lambda-sae:budget.maxHours`)")
    else:
        lines.append(f"**Projected for {summary.max_hours:g} h:** ${summary.projected_usd:.2f}")
    if summary.max_usd_per_hour is not None:
        verdict = "❌ **over budget**" if summary.over_budget else "✅ within budget"
        lines.append(f"**Budget:** ${summary.max_usd_per_hour:.2f}/h: {verdict}")
    if summary.training_change:
        lines.append(f"**Training:** {summary.training_change.removeprefix('training: ')}")
    for name in summary.filesystem_deletions:
        lines.append(f"⚠️ **filesystem `{name}` would be deleted** (with any checkpoints on it)")
    for error in summary.errors:
        lines.append(f"❌ preview error: {error_headline(error)}")
    return "\n".join(lines) + "\n"


def render(summaries: list[StackSummary]) -> str:
    return "\n".join(render_stack(s) for s in summaries)

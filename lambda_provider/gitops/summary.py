"""Per stack: each node's change, type, region, capacity and $/hour before and after, and the projected cost."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lambda_provider.domain import accepts, parse_placements
from lambda_provider.gitops.capacity import Catalogue, capacity_for, price_of
from lambda_provider.gitops.preview import NodeChange, PreviewPlan


@dataclass(frozen=True)
class NodeRow:
    change: str
    name: str
    instance_type: str
    region: str
    capacity: str
    cents_before: int | None
    cents_after: int | None


@dataclass(frozen=True)
class StackSummary:
    stack: str
    rows: tuple[NodeRow, ...]
    max_hours: float | None
    max_usd_per_hour: float | None
    filesystem_deletions: tuple[str, ...]  # filesystems the change would really delete (not retained)
    errors: tuple[str, ...]
    training_change: str | None = None

    def count(self, change: str) -> int:
        return sum(1 for r in self.rows if r.change == change)

    @property
    def usd_per_hour_before(self) -> float:
        return sum(r.cents_before or 0 for r in self.rows) / 100.0

    @property
    def usd_per_hour_after(self) -> float:
        return sum(r.cents_after or 0 for r in self.rows) / 100.0

    @property
    def projected_usd(self) -> float | None:
        return None if self.max_hours is None else self.usd_per_hour_after * self.max_hours

    @property
    def over_budget(self) -> bool:
        return self.max_usd_per_hour is not None and self.usd_per_hour_after > self.max_usd_per_hour + 1e-9


def _row(node: NodeChange, catalogue: Catalogue) -> NodeRow:
    old_type = node.old_outputs.get("instance_type") or ""
    old_region = node.old_outputs.get("region") or ""
    before = node.old_outputs.get("price_cents_per_hour") if node.change != "added" else None
    if before is None and node.change != "added":
        before = price_of(catalogue, old_type)
    if node.change == "removed":
        return NodeRow("removed", node.name, old_type, old_region, "–", before, None)
    placements = parse_placements(node.new_inputs.get("placements"))
    keeps_running = node.change in ("updated", "unchanged") and accepts(placements, old_type, old_region)
    if keeps_running:
        return NodeRow(node.change, node.name, old_type, old_region, "running", before, before)
    capacity = capacity_for(catalogue, placements)
    wanted = placements[0] if placements else None
    itype = capacity.instance_type or (wanted.instance_type if wanted else "?")
    region = capacity.region or (wanted.region if wanted and wanted.region else "any")
    return NodeRow(node.change, node.name, itype, region, capacity.text, before, capacity.price_cents_per_hour)


def _row_order(row: NodeRow) -> tuple[Any, ...]:
    """By node name, numbers as numbers (node-2 before node-10): the engine reports steps in no fixed order, and a
    comment edited on every push should keep each node on its line."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", row.name))


def summarize(
    plan: PreviewPlan, catalogue: Catalogue, *, max_hours: float | None = None, cap_usd_per_hour: float | None = None
) -> StackSummary:
    """`cap_usd_per_hour`: the repository's cap; the verdict uses the lower of it and the stack's budget."""
    budget = plan.budget()
    hours = max_hours if max_hours is not None else budget.max_hours
    per_hour, _ = budget.capped(cap_usd_per_hour)
    deletions = tuple(
        f.name for f in plan.filesystems if f.change in ("removed", "replaced") and not f.old_retain_on_delete
    )
    return StackSummary(
        stack=plan.stack,
        rows=tuple(sorted((_row(n, catalogue) for n in plan.instances), key=_row_order)),
        max_hours=hours,
        max_usd_per_hour=per_hour,
        filesystem_deletions=deletions,
        errors=plan.errors,
        training_change=plan.training_change,
    )

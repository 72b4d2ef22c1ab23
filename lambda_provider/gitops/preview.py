"""Read `pulumi preview --json`: per Lambda resource, the change and its state before and after.

The JSON is one object: `config`, `steps[]` ({op, urn, oldState, newState, ...}), `diagnostics[]`,
`changeSummary` (pulumi/pulumi pkg/display/json.go). A replace shows as up to three steps on one URN
(`delete-replaced`, `replace`, `create-replacement`); they are folded into one change here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from lambda_provider.domain import StackBudget, stack_budget

INSTANCE_TYPE = "pulumi-python:dynamic/lambda:Instance"
FILESYSTEM_TYPE = "pulumi-python:dynamic/lambda:Filesystem"
TRAINING_RUN_TYPE = "pulumi-python:dynamic/fleet:TrainingRun"
REPLACE_OPS = {"replace", "create-replacement", "delete-replaced", "discard-replaced"}


class PreviewError(ValueError):
    """The input is not the output of `pulumi preview --json`."""


@dataclass(frozen=True)
class NodeChange:
    """One Lambda resource in the preview. `change`: added, replaced, removed, updated or unchanged."""

    urn: str
    resource_type: str
    change: str
    old_inputs: dict[str, Any] = field(default_factory=dict)
    old_outputs: dict[str, Any] = field(default_factory=dict)
    new_inputs: dict[str, Any] = field(default_factory=dict)
    old_retain_on_delete: bool = False
    old_protect: bool = False
    replace_reasons: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    @property
    def stack(self) -> str:
        return stack_of(self.urn)


@dataclass(frozen=True)
class PreviewPlan:
    stack: str
    config: dict[str, Any]
    changes: tuple[NodeChange, ...]
    change_summary: dict[str, int]
    errors: tuple[str, ...] = ()
    training_change: str | None = None  # the TrainingRun's decision line (training/changes.py), when it acts

    @property
    def instances(self) -> list[NodeChange]:
        return [c for c in self.changes if c.resource_type == INSTANCE_TYPE]

    @property
    def filesystems(self) -> list[NodeChange]:
        return [c for c in self.changes if c.resource_type == FILESYSTEM_TYPE]

    def budget(self) -> StackBudget:
        """The stack's `lambda-sae:budget` config; None values when absent or secret."""
        return stack_budget(self.config)


def stack_of(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::<type>::<name>` -> stack."""
    head = urn.split("::", 1)[0]
    return head.split(":", 2)[2] if head.count(":") >= 2 else ""


def _fold(ops: list[str]) -> str:
    if REPLACE_OPS & set(ops):
        return "replaced"
    if "create" in ops:
        return "added"
    if "delete" in ops:
        return "removed"
    if "update" in ops:
        return "updated"
    return "unchanged"


def parse_preview(text: str) -> PreviewPlan:
    """Parse the text `pulumi preview --json` printed (a failed preview still prints its diagnostics)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PreviewError(f"not JSON ({exc}); pass the stdout of `pulumi preview --json`") from None
    if not isinstance(data, dict) or not isinstance(data.get("steps", []), list):
        raise PreviewError("expected the object `pulumi preview --json` prints, with a `steps` list")
    by_urn: dict[str, list[dict[str, Any]]] = {}
    stack = ""
    training_change = None
    for step in data.get("steps") or []:
        urn = step.get("urn") or ""
        stack = stack or stack_of(urn)
        state = step.get("newState") or step.get("oldState") or {}
        if state.get("type") in (INSTANCE_TYPE, FILESYSTEM_TYPE):
            by_urn.setdefault(urn, []).append(step)
        elif state.get("type") == TRAINING_RUN_TYPE and step.get("op") != "same":
            training_change = (step.get("newState") or {}).get("inputs", {}).get("change") or training_change
    changes = tuple(_change(urn, steps) for urn, steps in by_urn.items())
    errors = tuple(
        d.get("message", "").strip()
        for d in data.get("diagnostics") or []
        if d.get("severity") == "error" and d.get("message")
    )
    return PreviewPlan(
        stack=stack,
        config=data.get("config") or {},
        changes=changes,
        change_summary=data.get("changeSummary") or {},
        errors=errors,
        training_change=training_change,
    )


def _change(urn: str, steps: list[dict[str, Any]]) -> NodeChange:
    old = next((s["oldState"] for s in steps if s.get("oldState")), {}) or {}
    new = next((s["newState"] for s in reversed(steps) if s.get("newState")), {}) or {}
    reasons = tuple(dict.fromkeys(r for s in steps for r in (s.get("replaceReasons") or [])))
    return NodeChange(
        urn=urn,
        resource_type=(new or old).get("type", ""),
        change=_fold([s.get("op", "") for s in steps]),
        old_inputs=_clean(old.get("inputs")),
        old_outputs=_clean(old.get("outputs")),
        new_inputs=_clean(new.get("inputs")),
        old_retain_on_delete=bool(old.get("retainOnDelete")),
        old_protect=bool(old.get("protect")),
        replace_reasons=reasons,
    )


def _clean(props: Any) -> dict[str, Any]:
    """Inputs/outputs without the pickled provider (never shown, never needed here)."""
    return {k: v for k, v in (props or {}).items() if k != "__provider"} if isinstance(props, dict) else {}

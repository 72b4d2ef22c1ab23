"""The few lines `up` ends with instead of Pulumi's Outputs block: nodes with their ssh command, cost now and
planned, expiry, training state and metrics."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lambda_provider.cli.format import duration, money, number

# The run's latest metrics in the summary, as the live view and the trainer's log show them.
METRICS: tuple[tuple[str, Callable[[float], str]], ...] = (
    ("step", lambda v: f"step {v:,.0f}"),
    ("fvu", lambda v: f"FVU {v:.4f}"),
    ("l0", lambda v: f"L0 {number(v, 1)}"),
    ("dead_fraction", lambda v: f"dead {v:.2%}"),
    ("vectors_per_second", lambda v: f"{v:,.0f} vec/s"),
)


def train_on_cache(run_dir: str) -> str:
    """The trainer keys that train an SAE on the activation cache in `run_dir` (summary and pull say the same)."""
    return f"`data_source: shards, shard_paths: [{run_dir}]`"


def _hours_since(iso: str | None, now: datetime) -> float | None:
    try:
        return max(0.0, (now - datetime.fromisoformat(str(iso))).total_seconds() / 3600.0)
    except (TypeError, ValueError):
        return None


def summary_lines(stack: str, out: dict[str, Any], now: datetime | None = None) -> list[str]:
    now = now or datetime.now(UTC)
    lines = [f"Fleet '{stack}' ({out.get('target')}):"]
    for node in out.get("nodes") or []:
        lines.append(
            f"  {node.get('node', ''):<10} {node.get('type', ''):<18} {node.get('region', ''):<10} "
            f"{node.get('ip') or '-':<15} {node.get('ssh', '')}"
        )
    hourly = float(out.get("hourly_cost_usd") or 0.0)
    cost = f"  cost: {money(hourly)}/h now"
    hours = _hours_since(out.get("created_at"), now)
    if hours is not None:
        cost += f", {money(hourly * hours)} spent so far ({duration(hours * 3600)} up)"
    cost += f", {money(float(out.get('projected_cost_usd') or 0.0))} planned over {out.get('max_hours')} h"
    lines.append(cost)
    if out.get("expires_at"):
        lines.append(f"  expires {out.get('expires_at')} (created {out.get('created_at')})")
    training = out.get("training") or {}
    if training:
        state = f"  training: {training.get('state')}"
        if training.get("reason"):
            state += f" ({training['reason']})"
        state += f" at step {training.get('step')}/{training.get('total_steps')}"
        lines.append(state)
        metrics = training.get("latest_metrics") or {}
        shown = [
            show(metrics[key]) if isinstance(metrics[key], int | float) else f"{key} {metrics[key]}"
            for key, show in METRICS
            if metrics.get(key) is not None
        ]
        if shown:
            lines.append("  metrics: " + ", ".join(shown))
        cache = training.get("cache") or {}
        if cache:
            run_dir = (out.get("filesystem") or {}).get("run_dir", "the run directory")
            lines.append(
                f"  cache: {cache.get('vectors') or 0:,} activation vectors in {run_dir} "
                f"({', '.join(cache.get('manifests') or [])}); train on it with {train_on_cache(run_dir)}"
            )
        for key in ("change", "note"):
            if training.get(key):
                lines.append(f"  {key}: {training[key]}")
        probe = training.get("probe") or {}
        for layer, f1s in (probe.get("span_f1") or {}).items():
            scores = ", ".join(f"{method} {number(f1)}" for method, f1 in f1s.items())
            lines.append(f"  probe span F1 ({layer}): {scores} (report {probe.get('report')})")
        if probe.get("error"):
            lines.append(f"  probe failed: {probe['error']}")
        for crash in training.get("crashed") or []:
            lines.append(f"  crashed: {crash.get('node')}: {crash.get('cause')}")
    return lines

"""The live view's training line, fed the progress records the fleet's processes append (lambda_provider.progress)."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest

from lambda_provider import progress
from lambda_provider.cli.view import FleetView


@pytest.fixture
def view_after_two_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FleetView:
    path = tmp_path / "progress.jsonl"
    monkeypatch.setenv(progress.ENV, str(path))
    progress.emit("node", node="node-0", phase="training")
    progress.emit(
        "training", node="node-0", step=100, total_steps=1000, vectors_per_second=51234.5, fvu=0.25, state="running"
    )
    time.sleep(0.2)
    progress.emit(
        "training", node="node-0", step=200, total_steps=1000, vectors_per_second=52000.0, fvu=0.2, state="running"
    )
    view = FleetView()
    records, _ = progress.read_new(path, 0)
    for record in records:
        view.on_progress(record)
    node = view.node("node-0")
    node.hourly_usd, node.created = 3.6, time.time() - 100  # what the Instance's outputs and the state give it
    return view


def test_a_node_record_sets_its_phase(view_after_two_records: FleetView) -> None:
    assert view_after_two_records.node("node-0").phase == "training"


def test_the_training_line_has_step_rate_fvu_eta_and_money(view_after_two_records: FleetView) -> None:
    line = view_after_two_records.training_line(time.time())
    assert line.startswith("running, step 200/1000, 52,000 vec/s, FVU 0.2, ETA ")
    assert line.endswith(", $0.10 spent")


def test_the_eta_follows_the_step_rate(view_after_two_records: FleetView) -> None:
    eta = view_after_two_records.training.eta_seconds()
    assert eta is not None, "no ETA after two progress records"
    assert 0.5 < eta < 10, f"ETA {eta:.2f} s, expected 0.5-10 s"  # 800 steps left at >= 100 steps per ~0.2 s


def test_the_rich_view_renders(view_after_two_records: FleetView) -> None:
    from rich.console import Console

    console = Console(width=120, record=True, file=io.StringIO())
    console.print(view_after_two_records.renderable())
    text = console.export_text()
    assert re.search(r"^node-0\s.*\straining\s", text, re.M), text
    assert "training: running, step 200/1000" in text


def test_a_cache_runs_training_line_counts_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "progress.jsonl"
    monkeypatch.setenv(progress.ENV, str(path))
    progress.emit("training", node="node-0", step=3, total_steps=10, state="running", task="cache")
    view = FleetView()
    for record in progress.read_new(path, 0)[0]:
        view.on_progress(record)
    assert view.training_line(time.time()).startswith("running, caching activations, chunk 3/10")

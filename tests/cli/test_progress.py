"""Progress records: what the program and the providers append while the CLI tails the file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lambda_provider import progress
from tests.pulumi_support import REPO_ROOT

WRITER = """
import sys
from lambda_provider.progress import emit
for step in range(200):
    emit("training", node=sys.argv[1], step=step, note="x" * 300)
"""


def test_records_from_concurrent_processes_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    env = {"LAMBDA_SAE_PROGRESS": str(path), "PYTHONPATH": str(REPO_ROOT)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, f"node-{i}"], env=env) for i in range(4)]
    assert [w.wait(timeout=60) for w in writers] == [0, 0, 0, 0]
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 800
    assert {r["node"] for r in records} == {"node-0", "node-1", "node-2", "node-3"}


def test_emit_without_the_variable_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    progress.emit("node", node="node-0", phase="setup")
    assert list(tmp_path.iterdir()) == []


def test_emit_into_an_unwritable_place_does_not_raise(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(progress.ENV, str(tmp_path / "missing-dir" / "progress.jsonl"))
    progress.emit("node", node="node-0", phase="setup")
    assert not (tmp_path / "missing-dir").exists()


def test_a_reader_gets_only_complete_records(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    path.write_text('{"kind": "node", "node": "node-0", "phase": "ready"}\n{"kind": "trai')
    records, offset = progress.read_new(path, 0)
    assert records == [{"kind": "node", "node": "node-0", "phase": "ready"}]
    with path.open("a") as handle:
        handle.write('ning", "step": 5}\n')
    assert progress.read_new(path, offset)[0] == [{"kind": "training", "step": 5}]

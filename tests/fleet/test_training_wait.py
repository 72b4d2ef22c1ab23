"""How the fleet's wait on a run reads the head's status: a finished run is finished even while its processes are
still tearing down (DDP's barrier, torchrun's exit barrier across nodes), also at the deadline; what lingers past a
grace is stopped, so nothing keeps running on the nodes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lambda_provider.fleet import training_run
from lambda_provider.fleet.node_step import StepFailed


class ScriptedNode:
    """A node whose launcher status follows a script: one entry per status call, the last one repeating."""

    def __init__(self, name: str, script: list[tuple[str, bool]]) -> None:
        self.name = name
        self.script = script
        self.calls = 0
        self.stopped = False

    async def status(self) -> dict[str, Any]:
        state, running = self.script[min(self.calls, len(self.script) - 1)]
        running = running and not self.stopped
        self.calls += 1
        return {
            "running": running,
            "state": state,
            "status": {"state": state, "step": 196 if state == "finished" else 150, "total_steps": 196},
        }

    async def sh(self, script: str, timeout: float = 180.0) -> tuple[int, str]:
        assert script.endswith(" stop"), script
        self.stopped = True
        return 0, "@fleet stop=clean"

    async def launch_log(self, lines: int = 25) -> str:
        return "step 150/196 | ..."


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training_run, "POLL_SECONDS", 0.01)


def wait(nodes: list[ScriptedNode], wait_seconds: float) -> dict[str, Any]:
    return asyncio.run(training_run._wait(nodes, wait_seconds))  # type: ignore[arg-type]


def test_a_finished_run_whose_processes_linger_is_finished_and_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training_run, "EXIT_GRACE_SECONDS", 0.05)
    head = ScriptedNode("node-0", [("running", True), ("finished", True)])
    peer = ScriptedNode("node-1", [("running", True)])
    status = wait([head, peer], wait_seconds=60)
    assert status["status"]["state"] == "finished"
    assert head.calls >= 3  # it did wait for the exit before stopping what was left
    assert head.stopped, "the head's lingering processes were not stopped"
    assert peer.stopped, "the peer's lingering processes were not stopped"
    report = training_run._report(status, None)
    assert report["state"] == "finished", report
    assert "the fleet stopped them" in report["note"], report


def test_a_run_finishing_at_the_deadline_is_not_reported_as_unfinished(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training_run, "EXIT_GRACE_SECONDS", 60.0)
    head = ScriptedNode("node-0", [("running", True)] * 3 + [("finished", True)])
    status = wait([head, ScriptedNode("node-1", [("running", True)])], wait_seconds=0.03)
    assert status["status"]["state"] == "finished", status
    assert head.stopped, "the finished run's processes were not stopped"


def test_a_run_still_training_at_the_deadline_fails_with_its_progress() -> None:
    head = ScriptedNode("node-0", [("running", True)])
    with pytest.raises(
        StepFailed,
        match=r"node node-0: training did not finish within 0 s \(state running, "
        r"step 150/196\); it keeps running",
    ):
        wait([head, ScriptedNode("node-1", [("running", True)])], wait_seconds=0.05)


def test_a_finished_run_that_exited_returns_at_once() -> None:
    head = ScriptedNode("node-0", [("finished", False)])
    status = wait([head], wait_seconds=60)
    assert status["status"]["state"] == "finished", status
    assert "note" not in training_run._report(status, None), training_run._report(status, None)
    assert head.calls == 1, f"{head.calls} status calls, expected 1"
    assert not head.stopped, "a run that exited was stopped"

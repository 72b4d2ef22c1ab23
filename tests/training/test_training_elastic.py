"""Elastic runs: resume on another number of ranks, uneven batch split, launch heartbeats, relaunch failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, free_port, subprocess_env, tiny_overrides

from training.train import main


def _torchrun(ranks: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        f"--nproc-per-node={ranks}",
        "--master-addr=127.0.0.1",
        f"--master-port={free_port()}",
    ]


def _command(ranks: int, out_dir: Path, **extra: object) -> list[str]:
    args = [*(_torchrun(ranks) if ranks > 1 else [sys.executable]), "-m", "training.train"]
    for key, value in tiny_overrides(out_dir, **extra).items():
        args += ["--set", f"{key}={value}"]
    return args


def _run(args: list[str], launch_id: str | None = None) -> subprocess.CompletedProcess[str]:
    env = subprocess_env()
    if launch_id is not None:
        env["FLEET_LAUNCH_ID"] = launch_id
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_a_run_resumed_on_3_then_1_ranks_reaches_its_total(tmp_path: Path) -> None:
    out = tmp_path / "run"
    total = dict(total_vectors=256 * 60, log_every=20, synthetic_pool=8192 * 6)  # 6 chunks: 2 per rank on 3
    first = _run(_command(2, out, stop_after_steps=20, **total), launch_id="launch-a")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    second = _run(_command(3, out, stop_after_steps=40, **total), launch_id="launch-b")  # 256 rows: 86 + 85 + 85
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resumed at step 20 (checkpoint from 2 ranks, now 3: data position remapped)" in second.stdout
    beats = [json.loads((out / "ranks" / f"rank-{rank}.json").read_text()) for rank in range(3)]
    assert [b["launch_id"] for b in beats] == ["launch-b"] * 3
    assert [(b["rank"], b["world_size"], b["step"]) for b in beats] == [(0, 3, 21), (1, 3, 21), (2, 3, 21)]
    third = _run(_command(1, out, **total), launch_id="launch-c")
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert "resumed at step 40 (checkpoint from 3 ranks, now 1: data position remapped)" in third.stdout
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "finished"
    assert status["step"] == 60
    assert status["total_steps"] == 60
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 60
    assert summary["world_size"] == 1
    assert summary["fvu"] < 0.6
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [20, 40, 60]


def test_an_uneven_batch_on_two_ranks_steps_as_one_rank_does(tmp_path: Path) -> None:
    script = str(REPO / "tests" / "training" / "one_step.py")
    alone = _run([sys.executable, script, str(tmp_path / "alone.pt"), str(tmp_path / "alone")])
    assert alone.returncode == 0, alone.stderr[-3000:]
    split = _run([*_torchrun(2), script, str(tmp_path / "split.pt"), str(tmp_path / "split")])
    assert split.returncode == 0, split.stderr[-3000:]
    a = torch.load(tmp_path / "alone.pt", weights_only=False)
    b = torch.load(tmp_path / "split.pt", weights_only=False)
    for name, grad in a["grads"].items():  # rows 3 + 2: DDP's average is the whole batch's gradient
        torch.testing.assert_close(b["grads"][name], grad, atol=1e-6, rtol=1e-5)
    for name, param in a["params"].items():
        torch.testing.assert_close(b["params"][name], param, atol=1e-6, rtol=0)


def _main(out_dir: Path, **extra: object) -> list[str]:
    """`python -m training.train`'s argv for `training.train.main`, run in this process (no interpreter start-up)."""
    return [arg for key, value in tiny_overrides(out_dir, **extra).items() for arg in ("--set", f"{key}={value}")]


def test_a_failing_relaunch_leaves_a_finished_run_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(_main(out, total_vectors=256 * 30)) == 0
    kept = {name: (out / name).read_bytes() for name in ("status.json", "summary.json")}
    monkeypatch.setenv("FLEET_LAUNCH_ID", "relaunch-1")
    capsys.readouterr()
    assert main(_main(out, total_vectors=256 * 30, expansion_factor=4)) == 1  # the checkpoint's shapes do not fit
    stderr = capsys.readouterr().err
    assert stderr.strip().splitlines()[-1].startswith("trainer error: RuntimeError: Error(s) in loading state_dict")
    assert {name: (out / name).read_bytes() for name in kept} == kept
    error = json.loads((out / "relaunch-error.json").read_text())
    assert error["launch_id"] == "relaunch-1"
    assert error["error"].startswith("RuntimeError: Error(s) in loading state_dict")
    monkeypatch.setenv("FLEET_LAUNCH_ID", "relaunch-2")
    assert main(_main(out, total_vectors=20_000 * 40, batch_size=20_000)) == 2  # a batch larger than the data
    stderr = capsys.readouterr().err
    assert stderr.strip().splitlines()[-1].startswith("config error: batch_size: this rank's data")
    assert {name: (out / name).read_bytes() for name in kept} == kept
    assert json.loads((out / "relaunch-error.json").read_text())["launch_id"] == "relaunch-2"


def test_a_finished_run_relaunched_trains_on_only_when_its_total_grew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(_main(out, total_vectors=256 * 30)) == 0
    kept = {name: (out / name).read_bytes() for name in ("status.json", "summary.json")}
    monkeypatch.setenv("FLEET_LAUNCH_ID", "relaunch-1")
    capsys.readouterr()
    assert main(_main(out, total_vectors=256 * 30)) == 0
    assert "already finished at step 30/30: nothing to train" in capsys.readouterr().out
    assert {name: (out / name).read_bytes() for name in kept} == kept
    assert json.loads((out / "ranks" / "rank-0.json").read_text())["launch_id"] == "relaunch-1"
    assert main(_main(out, total_vectors=256 * 50)) == 0
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "finished"
    assert status["step"] == 50
    assert status["total_steps"] == 50
    assert json.loads((out / "summary.json").read_text())["steps"] == 50

"""The training run converges like the machines do (issue: every change takes effect or is refused at preview, no
dead run or dead node hides behind rc 0). Real CLI, real emulator, real SSH, real trainer; one stack, in order:

k change mid-run -> fresh run in a new directory with the new k; a trainer that dies at start fails `up` with its own
error although `waitMinutes: 0`; an out-of-band trainer kill shows as crashed after `refresh` and the next plain `up`
restarts it from its checkpoint; a node terminated mid-training is replaced and the run resumes; 2 -> 3 -> 1 nodes
continue one run to its total steps; a node added to the finished run is refused at preview.
(The trainer's side of elastic resume: tests/training/test_training_elastic.py; the decision: test_changes.py.)
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.fleet.fleet_support import A10, Fleet, assert_clean_up, fleet_on_emulator, run_status, stack_config

RUNNING = {"total_vectors": 40_000_000, "log_every": 25, "checkpoint_every": 100}
K16 = {**RUNNING, "k": 16}  # the run from the k change on
MISSING_SHARDS = {**K16, "data_source": "shards", "shard_paths": ["/lambda/nfs/sae-life/acts/*.safetensors"]}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with fleet_on_emulator(tmp_path_factory.mktemp("lifecycle"), filesystem="sae-life") as fleet:
        yield fleet


def config(count: int = 2, **training: Any) -> dict[str, Any]:
    return stack_config([A10], count=count, run_name="life", filesystem="sae-life", **training)


def wait_for_step(fleet: Fleet, run: str, step: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = int(run_status(fleet.run_dir(run)).get("step") or 0)
        if now >= step:
            return now
        time.sleep(0.5)
    raise AssertionError(f"{run} never reached step {step}: {run_status(fleet.run_dir(run))}")


def test_a_k_change_mid_run_is_previewed_and_relaunches_with_the_new_k(fleet: Fleet) -> None:
    fleet.configure(config(waitMinutes=0, overrides=RUNNING))
    assert_clean_up(fleet.up())
    wait_for_step(fleet, "life", 100)
    fleet.configure(config(waitMinutes=0, overrides=K16))
    preview = fleet.preview().stdout
    assert re.search(r"training: fresh run with k=16 in runs/life-2 \(k changes the SAE", preview), preview[-3000:]
    assert_clean_up(fleet.up())
    log = (fleet.run_dir("life-2") / "logs" / "node-0.log").read_text()
    assert re.search(r"^starting: .* k=16 ", log, re.MULTILINE), log[-2000:]


def test_the_old_run_is_kept_when_a_fresh_one_starts(fleet: Fleet) -> None:
    assert (fleet.run_dir("life") / "checkpoints" / "latest").is_file()


def test_a_trainer_that_dies_at_start_fails_up_with_its_own_error(fleet: Fleet) -> None:
    fleet.configure(config(waitMinutes=0, overrides=MISSING_SHARDS))
    result = fleet.up_result()
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert re.search(r"node node-\d: config error: shard_paths", output), output[-3000:]


def test_the_dying_trainer_s_hint_says_how_to_fix_it(fleet: Fleet) -> None:
    fleet.configure(config(waitMinutes=0, overrides=MISSING_SHARDS))
    output = fleet.up()
    assert "fix the key it names" in output, output[-3000:]


def test_an_out_of_band_trainer_kill_shows_as_crashed_after_refresh(fleet: Fleet) -> None:
    fleet.configure(config(waitMinutes=0, overrides=K16))
    assert_clean_up(fleet.up())
    wait_for_step(fleet, "life-4", 150)
    fleet.kill_trainer("node-1")
    time.sleep(3)
    fleet.project.run("refresh", "--yes", "--run-program")  # the program's run re-exports the stack outputs
    training = fleet.project.outputs()["training"]
    assert training["state"] == "crashed", training
    assert [c["node"] for c in training["crashed"]][:1] == ["node-1"], training


def test_the_next_plain_up_restarts_the_killed_run_from_its_checkpoint(fleet: Fleet) -> None:
    assert_clean_up(fleet.up())
    log = (fleet.run_dir("life-4") / "logs" / "node-0.log").read_text()
    assert re.search(r"^resumed at step [1-9]\d*", log, re.MULTILINE), log[-2000:]


def launches(fleet: Fleet, run: str) -> list[str]:
    """The head's log, one entry per launch (the launcher's `=== ... starts:` line opens each)."""
    return (fleet.run_dir(run) / "logs" / "node-0.log").read_text().split("\n=== ")[1:]


def test_a_node_terminated_mid_training_is_replaced_by_the_next_plain_up(fleet: Fleet) -> None:
    wait_for_step(fleet, "life-4", 150)
    fleet.before_replacement = len(launches(fleet, "life-4"))  # type: ignore[attr-defined]
    victim = next(i for i in fleet.live_instances() if i["name"].endswith("node-1"))
    fleet.emulator.api("POST", "/instance-operations/terminate", {"instance_ids": [victim["id"]]})
    assert_clean_up(fleet.up())
    assert victim["id"] not in [i["id"] for i in fleet.live_instances()]


def test_the_run_resumes_on_the_replacement_node_from_its_checkpoint(fleet: Fleet) -> None:
    after = launches(fleet, "life-4")[fleet.before_replacement :]  # type: ignore[attr-defined]
    assert after, "no launch on the replacement node"
    assert re.search(r"^resumed at step [1-9]\d*", after[-1], re.MULTILINE), after[-1:]


def test_a_third_node_is_previewed_as_a_resume_on_three_ranks(fleet: Fleet) -> None:
    wait_for_step(fleet, "life-4", 200)
    fleet.configure(config(count=3, waitMinutes=0, overrides=K16))
    preview = fleet.preview().stdout
    assert re.search(r"training: restart from step \d+ with 3 rank\(s\) instead of 2 in runs/life-4", preview), preview[
        -3000:
    ]


def test_a_third_node_joins_the_running_run_from_its_checkpoint(fleet: Fleet) -> None:
    fleet.configure(config(count=3, waitMinutes=0, overrides=K16))
    assert_clean_up(fleet.up())
    log = (fleet.run_dir("life-4") / "logs" / "node-0.log").read_text()
    assert re.search(r"^resumed at step \d+ \(checkpoint from 2 ranks, now 3", log, re.MULTILINE), log[-2000:]


def test_down_to_one_node_the_same_run_finishes_at_its_total_steps(fleet: Fleet) -> None:
    step = wait_for_step(fleet, "life-4", 1)
    fleet.total_steps = step + 400  # type: ignore[attr-defined]
    fleet.configure(config(count=1, overrides={**K16, "total_vectors": fleet.total_steps * 1024}))
    assert_clean_up(fleet.up())
    training = fleet.project.outputs()["training"]
    assert training["state"] == "finished", training
    assert training["step"] == fleet.total_steps, training


def test_the_finished_run_s_summary_names_its_one_rank_world(fleet: Fleet) -> None:
    assert fleet.project.outputs()["training"]["summary"]["world_size"] == 1


def test_a_node_added_to_the_finished_run_is_refused_at_preview(fleet: Fleet) -> None:
    fleet.configure(config(count=2, overrides={**K16, "total_vectors": fleet.total_steps * 1024}))
    result = fleet.preview()
    assert "would idle and bill" in result.stdout + result.stderr, result.stdout[-3000:]


def test_the_refused_preview_exits_non_zero(fleet: Fleet) -> None:
    fleet.configure(config(count=2, overrides={**K16, "total_vectors": fleet.total_steps * 1024}))
    assert fleet.preview().returncode != 0

"""The change table: what each stack or trainer change does to a run, decided before anything runs."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from training.changes import FRESH, NO_RESTART, RESUME, RunView, decide
from training.config import TrainConfig

BASE = "/lambda/nfs/sae/runs/big"
RUNNING = RunView("running", 2200, 5000)
FINISHED = RunView("finished", 5000, 5000)


def inputs(world: int = 2, **trainer: Any) -> dict[str, Any]:
    config = {"k": 8, "lr": 1e-3, "total_vectors": 5000 * 64, "batch_size": 64, "log_every": 50, **trainer}
    return {
        "run_base": BASE,
        "generation": 1,
        "trainer_config": config,
        "world_size": world,
        "code_digest": "abc",
        "master_port": 29500,
        "node_ids": [f"i-{n}" for n in range(world)],
    }


def test_every_trainer_key_has_exactly_one_class() -> None:
    keys = {f.name for f in fields(TrainConfig)} - {"out_dir"}
    assert sorted(keys) == sorted([*NO_RESTART, *RESUME, *FRESH])


def test_a_k_change_mid_run_is_a_fresh_run_in_a_new_directory() -> None:
    decision = decide(inputs(), inputs(k=16), RUNNING)
    assert decision.action == "fresh"
    assert decision.run_dir == f"{BASE}-2"


def test_the_fresh_run_line_names_the_value_the_directory_and_why() -> None:
    line = decide(inputs(), inputs(k=16), RUNNING).line
    assert line == "training: fresh run with k=16 in runs/big-2 (k changes the SAE or its data; runs/big is kept)"


def test_an_lr_change_mid_run_resumes_from_the_step_the_nodes_report() -> None:
    decision = decide(inputs(), inputs(lr=5e-4), RUNNING)
    assert decision.action == "resume"
    assert decision.line == "training: restart from step 2200 with lr=0.0005 in runs/big"


def test_a_node_count_change_mid_run_resumes_on_the_new_world() -> None:
    decision = decide(inputs(world=2), inputs(world=3), RUNNING)
    assert decision.action == "resume"
    assert decision.run_dir == BASE


def test_the_world_size_reads_as_a_count_when_the_state_gives_it_back_as_a_float() -> None:
    old = {**inputs(world=2), "world_size": 2.0}  # numbers come back from the engine's state as floats
    assert (
        decide(old, inputs(world=3), RUNNING).line
        == "training: restart from step 2200 with 3 rank(s) instead of 2 in runs/big"
    )


def test_a_node_added_to_a_finished_run_is_refused_with_the_fix() -> None:
    decision = decide(inputs(world=2), inputs(world=3), FINISHED)
    assert decision.action == "refuse"
    assert "total_vectors" in (decision.refusal or "")


def test_a_node_removed_from_a_finished_run_leaves_the_run_alone() -> None:
    assert decide(inputs(world=3), inputs(world=1), FINISHED).action == "none"


def test_more_total_vectors_continue_a_finished_run() -> None:
    decision = decide(inputs(), inputs(total_vectors=8000 * 64), FINISHED)
    assert decision.action == "resume"
    assert "to step 8000" in decision.line


def test_an_lr_change_on_a_finished_run_is_refused_rather_than_silently_ignored() -> None:
    assert decide(inputs(), inputs(lr=5e-4), FINISHED).action == "refuse"


def test_a_dead_trainer_is_restarted_from_its_checkpoint() -> None:
    decision = decide(inputs(), inputs(), RunView("running", 1200, 5000, dead=("node-1",)))
    assert decision.action == "resume"
    assert "node-1" in decision.line


def test_a_healthy_run_without_changes_is_left_alone_and_says_nothing() -> None:
    assert decide(inputs(), inputs(), RUNNING) == decide(inputs(), inputs(), RUNNING).__class__("none", "", 1, BASE)


def test_a_logging_change_does_not_restart_and_says_when_it_applies() -> None:
    decision = decide(inputs(), inputs(log_every=10), RUNNING)
    assert decision.action == "none"
    assert "applies when the trainer next starts" in decision.line


def test_the_first_create_starts_in_the_base_directory() -> None:
    decision = decide(None, inputs(), RunView())
    assert decision.action == "start"
    assert decision.run_dir == BASE


def test_a_second_fresh_change_counts_on() -> None:
    old = {**inputs(k=16), "generation": 2}
    assert decide(old, inputs(k=32), RUNNING).run_dir == f"{BASE}-3"


def test_a_run_stopped_by_a_signal_is_interrupted_and_resumes() -> None:
    decision = decide(inputs(), inputs(), RunView("stopped", 165, 5000, reason="peer_stopped"))
    assert decision.action == "resume"


def test_a_run_stopped_by_its_own_limit_is_done() -> None:
    assert decide(inputs(), inputs(), RunView("stopped", 4000, 5000, reason="max_hours")).action == "none"


CACHE = {"module": "training.cache_activations", "args": ["--shard-vectors", "262144"]}


def cache_inputs(**trainer: Any) -> dict[str, Any]:
    return {**inputs(**trainer), "task": CACHE}


def test_turning_a_training_run_into_a_cache_run_is_a_fresh_run() -> None:
    assert decide(inputs(), cache_inputs(), RUNNING).action == "fresh"


def test_the_cache_run_gets_the_next_directory() -> None:
    assert decide(inputs(), cache_inputs(), RUNNING).run_dir == f"{BASE}-2"


def test_the_task_change_line_says_what_runs_now_and_what_is_kept() -> None:
    line = decide(inputs(), cache_inputs(), RUNNING).line
    assert line == "training: fresh cache run in runs/big-2 (the run was a training run; runs/big is kept)"


def test_a_changed_cache_option_is_a_fresh_cache() -> None:
    changed = {**cache_inputs(), "task": {**CACHE, "args": ["--shard-vectors", "1024"]}}
    line = decide(cache_inputs(), changed, RUNNING).line
    assert line == "training: fresh cache run in runs/big-2 (training.cache changed; runs/big is kept)"


def test_a_restarted_cache_run_says_it_starts_from_its_first_chunk() -> None:
    line = decide(cache_inputs(), cache_inputs(lr=3e-4), RUNNING).line
    assert line.endswith("; a cache run starts again from its first chunk"), line


def test_the_first_create_of_a_cache_run_says_it_is_a_cache() -> None:
    assert decide(None, cache_inputs(), RunView()).line == "training: start the cache run in runs/big"


def test_re_uploaded_data_the_run_reads_is_a_fresh_run() -> None:
    old, new = {**inputs(), "data_digest": "aaa"}, {**inputs(), "data_digest": "bbb"}
    line = decide(old, new, RUNNING).line
    assert line == "training: fresh run in runs/big-2 (the uploaded data it reads changed; runs/big is kept)"


def test_a_state_from_before_the_data_digest_does_not_restart_the_run() -> None:
    assert decide(inputs(), {**inputs(), "data_digest": "bbb"}, RUNNING).action == "none"

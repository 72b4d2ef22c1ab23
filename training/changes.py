"""The change table: what a change of a trainer key (or of the fleet around the run) does to a run in progress.

Every key of `TrainConfig` is in exactly one class (a test says so):

- `NO_RESTART`: no effect on the run in progress; the value applies when the trainer next starts.
- `RESUME`: the trainer is stopped (it checkpoints on SIGTERM) and resumes from its latest checkpoint with the new
  value, in the same run directory. The node count and the trainer's code are in this class too.
- `FRESH`: anything that changes the SAE's shape or the data it is trained on: a fresh run in a new run directory
  (`<runName>-2`, `-3`, ...); the old directory is kept.

`decide()` turns the old and new inputs plus what the nodes report into one `Decision`, with the human line that the
preview shows next to the diff and that the `training.change` output keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from training.config import TrainConfig

# What a `training.cache` run runs instead of training.train (its TrainingRun `task` module), and the `task` its
# status.json names (the views count its chunks, not steps).
CACHE_MODULE = "training.cache_activations"
CACHE_TASK = "cache"

NO_RESTART = frozenset({"log_every", "plot", "prefetch"})  # prefetch: when the same data is read, not what
FRESH = frozenset(
    {
        # the SAE's shape and what it is
        "d_in",
        "expansion_factor",
        "n_latents",
        "k",
        "architecture",
        "batchtopk_candidates",
        "b_dec_init",
        # the data and its order (stream positions in a checkpoint mean nothing under another order)
        "data_source",
        "seed",
        "data_seed",
        "init_seed",
        "shuffle_seed",
        "shuffle_buffer",
        "batch_size",
        "eval_vectors",
        "synthetic_features",
        "synthetic_active",
        "synthetic_zipf",
        "synthetic_noise",
        "synthetic_offset_norm",
        "synthetic_pool",
        "shard_paths",
        "shard_key",
        "hf_model",
        "hf_model_config",
        "hf_layer",
        "hf_tokens",
        "hf_text_files",
        "hf_context",
        "hf_batch_sequences",
        "hf_skip_first_token",
        # the list of SAEs a run trains (their layers, k, widths: each entry's keys are FRESH keys of one SAE)
        "saes",
    }
)
RESUME = frozenset(f.name for f in fields(TrainConfig)) - NO_RESTART - FRESH - {"out_dir"}
DONE_STATES = ("finished", "stopped")
# A run stopped by a signal (a preemption's SIGTERM, the fleet's own restart) is interrupted, not done: it resumes.
INTERRUPTED_REASONS = ("sigterm", "peer_stopped")


def is_done(state: str | None, reason: str | None) -> bool:
    """The run ended for good: finished, or stopped by its own limit (max_hours, stop_after_steps)."""
    return state == "finished" or (state == "stopped" and reason not in INTERRUPTED_REASONS)


# What the nodes report about the run in the current run directory (read over SSH before planning).
UNKNOWN = "unknown"  # the nodes could not be read (e.g. no SSH from where the preview runs)


@dataclass(frozen=True)
class RunView:
    """The run as the nodes show it: the head's status.json state, its step, and the nodes whose trainer is dead."""

    state: str = UNKNOWN
    step: int | None = None
    total_steps: int | None = None
    dead: tuple[str, ...] = ()  # nodes whose trainer should run but does not (or that do not answer)
    reason: str | None = None  # status.json's reason (e.g. completed, max_hours, sigterm)

    @property
    def done(self) -> bool:
        return is_done(self.state, self.reason)


@dataclass(frozen=True)
class Decision:
    action: str  # none | start | resume | fresh | refuse
    line: str  # one human line, e.g. "restart from step 2200 with k=16 in runs/big-2 (k changes the SAE)"
    generation: int
    run_dir: str
    refusal: str | None = None  # for action == refuse: the problem and the fix


def run_dir_for(base: str, generation: int) -> str:
    return base if generation <= 1 else f"{base}-{generation}"


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k != "out_dir")


def _values(keys: list[str], config: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={config.get(k)!r}" if not isinstance(config.get(k), (int, float)) else f"{k}={config.get(k):g}"
        for k in keys
    )


def _short(run_dir: str) -> str:
    marker = "/runs/"
    return run_dir[run_dir.index(marker) + 1 :] if marker in run_dir else run_dir


def decide(old: dict[str, Any] | None, new: dict[str, Any], view: RunView) -> Decision:
    """`old`/`new`: the TrainingRun's inputs (trainer_config, world_size, run_base, generation, code_digest, task,
    ...); `old` is None on the first create."""
    decision = _decide(old, new, view)
    if decision.action == "resume" and _task_name(new.get("task")) == "cache":  # a cache keeps no checkpoint
        return replace(decision, line=f"{decision.line}; a cache run starts again from its first chunk")
    return decision


def _decide(old: dict[str, Any] | None, new: dict[str, Any], view: RunView) -> Decision:
    base = new["run_base"]
    if not old or old.get("run_base") != base:
        generation = 1
        run_dir = run_dir_for(base, generation)
        if _task_name(new.get("task")) == "cache":
            what = "start the cache run" if not old else "start a new cache run (training.runName changed)"
            return Decision("start", f"training: {what} in {_short(run_dir)}", generation, run_dir)
        what = "start the run" if not old else "start a new run (training.runName changed; the old one is kept)"
        return Decision(
            "start",
            f"training: {what} in {_short(run_dir)} (from its latest checkpoint if an earlier run left one there)",
            generation,
            run_dir,
        )
    generation = int(old.get("generation") or 1)
    run_dir = run_dir_for(base, generation)
    old_cfg, new_cfg = old.get("trainer_config") or {}, new.get("trainer_config") or {}
    changed = changed_keys(old_cfg, new_cfg)
    fresh = [k for k in changed if k in FRESH]
    resume = [k for k in changed if k in RESUME]
    quiet = [k for k in changed if k in NO_RESTART]
    old_world, new_world = _count(old.get("world_size")), _count(new.get("world_size"))  # floats via the engine
    world_changed = old_world != new_world
    code_changed = old.get("code_digest") != new.get("code_digest")
    port_changed = old.get("master_port") != new.get("master_port")
    nodes_changed = old.get("node_ids") != new.get("node_ids")
    at = f"step {view.step}" if view.step is not None else "its latest checkpoint"
    if (old.get("task") or None) != (new.get("task") or None):  # what runs: the trainer, or a cache and its options
        generation += 1
        new_dir = run_dir_for(base, generation)
        old_task, new_task = _task_name(old.get("task")), _task_name(new.get("task"))
        why = f"the run was a {old_task} run" if old_task != new_task else "training.cache changed"
        return Decision(
            "fresh",
            f"training: fresh {new_task} run in {_short(new_dir)} ({why}; {_short(run_dir)} is kept)",
            generation,
            new_dir,
        )

    if "data_digest" in old and old.get("data_digest") != new.get("data_digest"):
        generation += 1
        new_dir = run_dir_for(base, generation)
        return Decision(
            "fresh",
            f"training: fresh run in {_short(new_dir)} (the uploaded data it reads changed; {_short(run_dir)} is kept)",
            generation,
            new_dir,
        )
    if fresh:
        generation += 1
        new_dir = run_dir_for(base, generation)
        why = f"{', '.join(fresh)} {'changes' if len(fresh) == 1 else 'change'} the SAE or its data"
        return Decision(
            "fresh",
            f"training: fresh run with {_values(fresh, new_cfg)} in {_short(new_dir)} ({why}; "
            f"{_short(run_dir)} is kept)",
            generation,
            new_dir,
        )

    reasons = []
    if resume:
        reasons.append(_values(resume, new_cfg))
    if world_changed:
        reasons.append(f"{new_world} rank(s) instead of {old_world}")
    elif nodes_changed:
        reasons.append("the replaced node(s)")
    if code_changed:
        reasons.append("the new trainer code")
    if port_changed:
        reasons.append(f"master port {new.get('master_port')}")

    if view.done:
        steps = view.total_steps
        grows = _total_steps(new_cfg) > (view.step or 0) and "total_vectors" in resume
        if grows:
            return Decision(
                "resume",
                f"training: continue the {view.state} run from {at} to step "
                f"{_total_steps(new_cfg)} with {'; '.join(reasons)} in {_short(run_dir)}",
                generation,
                run_dir,
            )
        if world_changed and (new_world or 0) > (old_world or 0):
            return Decision(
                "refuse",
                "",
                generation,
                run_dir,
                refusal=(
                    f"the run in {_short(run_dir)} is {view.state} (step {view.step}/{steps}): the added node(s) would "
                    "idle and bill. Either raise training.overrides.total_vectors to continue the run on the bigger "
                    "fleet, start a new run (a new training.runName or a trainer key that changes the SAE), or keep "
                    "the node count"
                ),
            )
        if resume or code_changed:
            return Decision(
                "refuse",
                "",
                generation,
                run_dir,
                refusal=(
                    f"the run in {_short(run_dir)} is {view.state} (step {view.step}/{steps}), so "
                    f"{'; '.join(reasons)} would not take effect. Raise training.overrides.total_vectors to "
                    "continue it with the new values, set a new training.runName for a new run, or revert the change"
                ),
            )
        note = f"; {_values(quiet, new_cfg)} applies when the trainer next starts" if quiet else ""
        if world_changed or nodes_changed:
            return Decision(
                "none",
                f"training: no change: the run is {view.state} (node changes do not touch it){note}",
                generation,
                run_dir,
            )
        return Decision(
            "none", f"training: no change (the run is {view.state}){note}" if quiet else "", generation, run_dir
        )

    if reasons:
        return Decision(
            "resume", f"training: restart from {at} with {'; '.join(reasons)} in {_short(run_dir)}", generation, run_dir
        )
    if view.dead:
        return Decision(
            "resume",
            f"training: restart from {at} in {_short(run_dir)} (the trainer is not running on {', '.join(view.dead)})",
            generation,
            run_dir,
        )
    if view.state in ("failed", "none", "stopped"):
        return Decision(
            "resume", f"training: restart from {at} in {_short(run_dir)} (the run is {view.state})", generation, run_dir
        )
    if quiet:
        return Decision(
            "none",
            f"training: no restart; {_values(quiet, new_cfg)} applies when the trainer next starts",
            generation,
            run_dir,
        )
    return Decision("none", "", generation, run_dir)


def is_cache_task(task: dict[str, Any] | None) -> bool:
    """Whether a TrainingRun's `task` is a `training.cache` run (activations to shards, no SAE)."""
    return bool(task) and task.get("module") == CACHE_MODULE


def _task_name(task: dict[str, Any] | None) -> str:
    """`training` (the trainer) or `cache` (training.cache: python -m training.cache_activations)."""
    return CACHE_TASK if is_cache_task(task) else "training"


def _count(value: Any) -> int | None:
    return None if value is None else int(value)


def _total_steps(config: dict[str, Any]) -> int:
    try:
        return TrainConfig(**{k: v for k, v in config.items() if k in TrainConfig.__dataclass_fields__}).total_steps()
    except TypeError:
        return 0

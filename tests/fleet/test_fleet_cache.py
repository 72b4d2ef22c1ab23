"""Activation caching as a fleet run, end to end (real `pulumi` CLI, emulator, SSH, torchrun, trainer): a stack with
`training.cache` runs `python -m training.cache_activations` on both nodes (each rank caches its share of the
windows, rank 0 writes the manifest) over a token file the stack uploads; the next `up`, now a `shards` run on the
cache directory through its `/lambda/nfs/...` path, trains an SAE on it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fleet.fleet_support import A10, assert_clean_up, fleet_on_emulator, stack_config

FS = "sae-cache"
MOUNT = f"/lambda/nfs/{FS}"
WINDOWS, CONTEXT = 80, 64  # tiny-gpt2.yaml: context 64, 8 windows a chunk -> 10 chunks, 5 per rank


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tokens") / "tokens.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, size=WINDOWS * CONTEXT).astype(np.int64))
    return path


def fleet_stack(tokens: Path, run_name: str, **training: Any) -> dict[str, Any]:
    """Two A10s on the cache test's filesystem, with the token file uploaded to it."""
    raw = stack_config([A10], count=2, run_name=run_name, filesystem=FS, **training)
    raw["data"] = {"tokens/train.npy": str(tokens)}
    return raw


def cache_stack(tokens: Path) -> dict[str, Any]:
    return fleet_stack(
        tokens,
        "acts",
        config="training/probe/tiny-gpt2.yaml",
        cache={"shardVectors": 1000},
        overrides={"hf_tokens": f"{MOUNT}/tokens/train.npy"},
    )


def shards_stack(tokens: Path) -> dict[str, Any]:
    return fleet_stack(
        tokens,
        "sae",
        config=None,
        overrides={
            "data_source": "shards",
            "shard_paths": [f"{MOUNT}/runs/acts"],
            "d_in": 32,
            "expansion_factor": 4,
            "k": 4,
            "batch_size": 252,
            "total_vectors": 252 * 12,
            "shuffle_buffer": 1008,
            "eval_vectors": 504,
            "log_every": 4,
            "checkpoint_every": 100,
        },
    )


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory, tokens: Path) -> Iterator[dict[str, Any]]:
    """The cache run's preview, up and manifest, then the shards run's preview, up and export."""
    with fleet_on_emulator(tmp_path_factory.mktemp("cache-fleet"), filesystem=FS) as fleet:
        seen: dict[str, Any] = {"fleet": fleet}
        fleet.configure(cache_stack(tokens))
        seen["cache_preview"] = fleet.preview()
        seen["cache_up"] = fleet.up()
        seen["cache_outputs"] = fleet.project.outputs()["training"]
        cache_dir = fleet.run_dir("acts")
        seen["manifest"] = json.loads((cache_dir / "manifest.json").read_text())
        seen["sae_files"] = list(cache_dir.glob("sae*.safetensors"))
        seen["record"] = json.loads((cache_dir / "fleet-run.json").read_text())
        fleet.configure(shards_stack(tokens))
        seen["shards_preview"] = fleet.preview()
        seen["shards_up"] = fleet.up()
        seen["shards_outputs"] = fleet.project.outputs()["training"]
        seen["cfg"] = json.loads((fleet.run_dir("sae") / "cfg.json").read_text())
        yield seen


def test_the_preview_of_a_cache_stack_says_it_starts_a_cache_run(journey: dict[str, Any]) -> None:
    preview = journey["cache_preview"]
    assert "training: start the cache run in runs/acts" in preview.stdout, preview.stdout[-3000:] + preview.stderr


def test_the_cache_up_applies_cleanly(journey: dict[str, Any]) -> None:
    assert_clean_up(journey["cache_up"])


def test_the_cache_run_finishes(journey: dict[str, Any]) -> None:
    assert journey["cache_outputs"]["state"] == "finished", journey["cache_outputs"]


def test_both_nodes_ranks_cached(journey: dict[str, Any]) -> None:
    assert journey["manifest"]["ranks"] == 2


def test_every_window_is_cached_once_its_first_position_skipped(journey: dict[str, Any]) -> None:
    assert journey["manifest"]["vectors"] == WINDOWS * (CONTEXT - 1)


def test_the_manifest_names_the_hooked_layer(journey: dict[str, Any]) -> None:
    assert journey["manifest"]["layer"] == "transformer.h.0"


def test_each_rank_wrote_its_own_shards(journey: dict[str, Any]) -> None:
    assert {s["file"][:10] for s in journey["manifest"]["shards"]} == {"shard-r000", "shard-r001"}


def test_the_training_output_reports_the_cached_vectors(journey: dict[str, Any]) -> None:
    assert journey["cache_outputs"]["cache"]["vectors"] == WINDOWS * (CONTEXT - 1), journey["cache_outputs"]


def test_the_fleet_records_the_cache_task_in_the_run_directory(journey: dict[str, Any]) -> None:
    assert journey["record"]["task"]["module"] == "training.cache_activations"


def test_a_cache_run_trains_no_sae(journey: dict[str, Any]) -> None:
    assert journey["sae_files"] == []


def test_the_shards_preview_says_a_new_run_starts(journey: dict[str, Any]) -> None:
    preview = journey["shards_preview"]
    expected = "training: start a new run (training.runName changed; the old one is kept)"
    assert expected in preview.stdout, preview.stdout[-3000:] + preview.stderr


def test_the_shards_up_applies_cleanly(journey: dict[str, Any]) -> None:
    assert_clean_up(journey["shards_up"])


def test_the_shards_run_trains_every_step_on_the_cache(journey: dict[str, Any]) -> None:
    assert journey["shards_outputs"]["summary"]["steps"] == 12, journey["shards_outputs"]


def test_the_export_names_the_caches_hook(journey: dict[str, Any]) -> None:
    assert journey["cfg"]["metadata"]["hook_name"] == "blocks.0.hook_resid_post"


def test_the_export_names_the_caches_context(journey: dict[str, Any]) -> None:
    assert journey["cfg"]["metadata"]["context_size"] == CONTEXT

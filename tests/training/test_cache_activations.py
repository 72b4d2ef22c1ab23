"""Activation caching: `python -m training.cache_activations` runs an hf source once into sharded .safetensors with a
manifest; a later shards run trains on the cache directory and its export names the model, hook and context."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import REPO, TINY_GPT2, free_port, subprocess_env, tiny_overrides
from safetensors.torch import load_file

from training.cache_activations import main as cache_main
from training.config import ConfigError, build_config
from training.data import HFActivationSource, ShardSource
from training.trainer import Trainer


def write_config(tmp_path: Path, out: str, **extra: Any) -> Path:
    np.save(tmp_path / "tokens.npy", np.random.default_rng(0).integers(0, 96, size=32 * 48).astype(np.int64))
    values = dict(
        data_source="hf",
        hf_model_config=TINY_GPT2,
        hf_layer="transformer.h.1",
        hf_tokens=str(tmp_path / "tokens.npy"),
        hf_context=32,
        hf_batch_sequences=8,
        threads=1,
        out_dir=str(tmp_path / out),
    )
    values.update(extra)
    path = tmp_path / f"{out}.yaml"
    path.write_text(json.dumps(values))  # JSON is YAML
    return path


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cache")
    assert cache_main(["--config", str(write_config(root, "cache")), "--shard-vectors", "500"]) == 0
    return root


def test_the_manifest_says_model_layer_context_tokens_and_dtype(cached: Path) -> None:
    manifest = json.loads((cached / "cache" / "manifest.json").read_text())
    assert {k: manifest[k] for k in ("layer", "d_in", "context", "token_count", "vectors", "dtype")} == {
        "layer": "transformer.h.1",
        "d_in": 32,
        "context": 32,
        "token_count": 48 * 32,  # every window of the token file (48 = 6 chunks of 8)
        "vectors": 48 * 31,  # the first position of each window skipped
        "dtype": "float32",
    }
    assert manifest["hf_model_config"]["model_type"] == "gpt2"


def test_shards_hold_the_hooked_activations_of_every_window_in_shuffled_order(cached: Path) -> None:
    manifest = json.loads((cached / "cache" / "manifest.json").read_text())
    assert [s["rows"] for s in manifest["shards"]] == [500, 500, 488]
    rows = torch.cat([load_file(str(cached / "cache" / s["file"]))["activations"] for s in manifest["shards"]])
    cfg = build_config(write_config(cached, "check", eval_vectors=0))
    source = HFActivationSource(cfg, torch.device("cpu"), seed=cfg.seeds()[0])
    torch.testing.assert_close(rows[: 8 * 31], source.chunk(0, 0))


def test_a_shards_run_trains_on_the_cache_directory(cached: Path) -> None:
    cfg = build_config(
        None,
        tiny_overrides(
            cached / "from-cache",
            data_source="shards",
            shard_paths=[str(cached / "cache")],
            d_in=None,
            expansion_factor=4,
            k=4,
            batch_size=124,
            total_vectors=124 * 10,
            shuffle_buffer=496,
            eval_vectors=124,
        ),
    )
    summary = Trainer(cfg).run().summary
    assert summary["d_in"] == 32
    assert summary["metrics_source"] == "held-out shard rows (124, never trained on)"
    meta = json.loads((cached / "from-cache" / "cfg.json").read_text())["metadata"]
    assert meta["hook_name"] == "blocks.1.hook_resid_post"
    assert meta["context_size"] == 32
    assert meta["seqpos_slice"] == [1, None]


def test_a_cache_whose_shard_lost_rows_is_refused(cached: Path, tmp_path: Path) -> None:
    manifest = json.loads((cached / "cache" / "manifest.json").read_text())
    manifest["shards"][0]["rows"] = 499
    for shard in manifest["shards"]:
        (tmp_path / shard["file"]).symlink_to(cached / "cache" / shard["file"])
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=r"shard-00000.safetensors has 500 rows, .*manifest.json says 499"):
        ShardSource([str(tmp_path)], None, seed=0)


def test_a_directory_without_manifest_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is a directory without manifest.json; give an activation cache"):
        ShardSource([str(tmp_path)], None, seed=0)


def test_two_layers_cache_into_one_directory_each(tmp_path: Path) -> None:
    saes = [{"hf_layer": "transformer.h.0"}, {"hf_layer": "transformer.h.1"}]
    assert cache_main(["--config", str(write_config(tmp_path, "two", saes=saes)), "--dtype", "bfloat16"]) == 0
    layers = [
        json.loads((tmp_path / "two" / layer / "manifest.json").read_text())
        for layer in ("transformer.h.0", "transformer.h.1")
    ]
    assert [(m["layer"], m["dtype"], m["vectors"]) for m in layers] == [
        ("transformer.h.0", "bfloat16", 48 * 31),
        ("transformer.h.1", "bfloat16", 48 * 31),
    ]


def test_caching_a_non_hf_config_exits_2_naming_data_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cache_main(["--config", str(write_config(tmp_path, "bad", data_source="synthetic", d_in=8))]) == 2
    assert capsys.readouterr().err.startswith("config error: data_source: caching runs an 'hf' source")


def test_two_ranks_split_the_windows_and_rank_0_writes_one_manifest(cached: Path, tmp_path: Path) -> None:
    """A cache run on a fleet runs under torchrun: each rank caches every W-th window, rank 0 lists all shards."""
    config = write_config(tmp_path, "ranks")
    env = {**subprocess_env(), "FLEET_LAUNCH_ID": "cache-launch"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc-per-node=2",
        "--master-addr=127.0.0.1",
        f"--master-port={free_port()}",
        "-m",
        "training.cache_activations",
        "--config",
        str(config),
        "--shard-vectors",
        "500",
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((tmp_path / "ranks" / "manifest.json").read_text())
    one_rank = json.loads((cached / "cache" / "manifest.json").read_text())
    assert manifest["vectors"] == one_rank["vectors"]
    assert manifest["ranks"] == 2
    assert {s["file"][:12] for s in manifest["shards"]} == {"shard-r000-0", "shard-r001-0"}
    rows = torch.cat([load_file(str(tmp_path / "ranks" / s["file"]))["activations"] for s in manifest["shards"]])
    expected = torch.cat([load_file(str(cached / "cache" / s["file"]))["activations"] for s in one_rank["shards"]])
    ordered = sorted(rows.tolist())
    assert ordered == sorted(expected.tolist()), "the two ranks cached other rows than one rank"
    heartbeats = sorted((tmp_path / "ranks" / "ranks").glob("rank-*.json"))
    assert [json.loads(h.read_text())["launch_id"] for h in heartbeats] == ["cache-launch", "cache-launch"]
    assert json.loads((tmp_path / "ranks" / "status.json").read_text())["state"] == "finished"


def cache_status(cached: Path) -> dict[str, Any]:
    """The status.json the finished cache run wrote (what the fleet reads from the head node)."""
    return json.loads((cached / "cache" / "status.json").read_text())


def cache_run_pull_message(cached: Path) -> str:
    """What `lambda-sae pull` says on this finished cache run, with the record the fleet writes at its launch."""
    from lambda_provider.cli.pull import nothing_to_pull
    from lambda_provider.fleet.config import CacheConfig
    from lambda_provider.fleet.training_run import _run_record

    record = _run_record({"trainer_config": {}, "world_size": 1, "task": CacheConfig().task()})
    status = cache_status(cached)
    return nothing_to_pull("node-0", str(cached / "cache"), "dev", status, record)


def test_pull_on_a_finished_cache_run_says_it_is_a_cache_not_an_sae(cached: Path) -> None:
    assert "is an activation cache (training.cache), not an SAE" in cache_run_pull_message(cached)


def test_pull_on_a_finished_cache_run_says_how_to_train_on_it(cached: Path) -> None:
    expected = f"`data_source: shards, shard_paths: [{cached / 'cache'}]`"
    assert expected in cache_run_pull_message(cached)


def test_pull_on_a_finished_cache_run_does_not_promise_an_sae_later(cached: Path) -> None:
    assert "pull again" not in cache_run_pull_message(cached)


def test_pull_on_a_finished_cache_run_names_its_manifest_from_the_run_directory(cached: Path) -> None:
    assert "vectors (manifest.json)" in cache_run_pull_message(cached)


def test_the_fleet_reports_a_finished_cache_with_its_manifest_named_from_the_run_directory(cached: Path) -> None:
    from lambda_provider.fleet.training_run import _report

    status = cache_status(cached)
    assert _report({"status": status}, None)["cache"]["manifests"] == ["manifest.json"]


def test_the_fleet_reports_a_finished_caches_vector_count(cached: Path) -> None:
    from lambda_provider.fleet.training_run import _report

    status = cache_status(cached)
    manifest = json.loads((cached / "cache" / "manifest.json").read_text())
    assert _report({"status": status}, None)["cache"]["vectors"] == manifest["vectors"]


def test_lambda_sae_status_calls_a_finished_caches_steps_chunks(cached: Path) -> None:
    from lambda_provider.cli.progress import training_line

    status = cache_status(cached)
    assert training_line(status, False).startswith(f"finished, chunk {status['step']}/{status['total_steps']}")


def test_lambda_sae_status_says_a_finished_cache_holds_its_vectors(cached: Path) -> None:
    from lambda_provider.cli.progress import training_line

    status = cache_status(cached)
    assert training_line(status, False).endswith(f"activation cache, {status['vectors']:,} vectors")

"""Config loading, CLI overrides, and rejection of bad configs with messages that name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, subprocess_env

from training.config import ConfigError, TrainConfig, apply_overrides, build_config, parse_cli_overrides


def test_yaml_and_cli_overrides_combine(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("d_in: 64\nk: 16\nlr: 0.002\nshard_paths: a.npy\n")
    overrides = parse_cli_overrides(["--set", "lr=1e-3", "--batch-size", "512", "--plot=false", "--k", "8"])
    cfg = build_config(path, overrides)
    assert cfg.d_in == 64
    assert cfg.k == 8
    assert cfg.lr == 1e-3
    assert cfg.batch_size == 512
    assert cfg.plot is False
    assert cfg.shard_paths == ["a.npy"]  # a bare string becomes a one-item list
    assert cfg.resolved_n_latents() == 512


def test_derived_defaults_scale_with_latents() -> None:
    small = TrainConfig(d_in=256).validate()
    large = TrainConfig(d_in=4096, expansion_factor=8).validate()
    assert small.resolved_lr() > large.resolved_lr()
    assert large.resolved_lr() == pytest.approx(small.resolved_lr() / 4)  # lr ~ 1/sqrt(n_latents)
    assert small.resolved_k_aux() == 128
    data, init, shuffle = small.seeds()
    assert len({data, init, shuffle}) == 3


@pytest.mark.parametrize(
    ("values", "key", "hint"),
    [
        ({"lrr": 1e-3}, "lrr", "did you mean 'lr'"),
        ({"k": "many"}, "k", "expected int"),
        ({"k": 0}, "k", "> 0"),
        ({"d_in": 16, "k": 500}, "k", "lower k"),
        ({"architecture": "relu"}, "architecture", "topk, batchtopk"),
        ({"decode_impl": "fast"}, "decode_impl", "auto, sparse, dense"),
        ({"data_source": "shards"}, "shard_paths", "at least one"),
        ({"data_source": "hf", "hf_layer": "h.0", "hf_tokens": "t.npy"}, "hf_model", "exactly one"),
        ({"data_source": "hf", "hf_model": "gpt2", "hf_tokens": "t.npy"}, "hf_layer", "dotted name"),
        ({"adam_beta2": 1.5}, "adam_beta2", "[0, 1)"),
        ({"decay_start": 0}, "decay_start", "(0, 1]"),
        ({"max_hours": -1.0}, "max_hours", "> 0"),
    ],
)
def test_bad_config_names_key(values: dict, key: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(TrainConfig(), values).validate()
    message = str(info.value)
    assert message.startswith(f"{key}:")
    assert hint in message


def test_cli_syntax_errors() -> None:
    with pytest.raises(ConfigError, match="--set: expects key=value"):
        parse_cli_overrides(["--set", "lr"])
    with pytest.raises(ConfigError, match="missing value"):
        parse_cli_overrides(["--lr"])
    with pytest.raises(ConfigError, match="unexpected argument"):
        parse_cli_overrides(["lr=3"])


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        build_config(tmp_path / "nope.yaml")


def test_train_cli_rejects_bad_config_with_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "training.train", "--set", "expansion_factr=4", "--out-dir", str(tmp_path / "run")],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "expansion_factr: unknown config key (did you mean 'expansion_factor'?)" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_shipped_configs_are_valid() -> None:
    configs = sorted((REPO / "training" / "configs").glob("*.yaml"))
    assert len(configs) >= 3
    for path in configs:
        cfg = build_config(path)
        assert cfg.k > 0, path

"""One run, several SAEs on one data stream (`saes`): one LM forward for every hooked layer; each SAE has its own
out_dir, metrics, export and summary, and trains exactly as it would alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import TINY_GPT2, tiny_overrides
from safetensors.torch import load_file

from training.config import ConfigError, build_config, sae_configs
from training.data import ShuffledStream, build_source
from training.trainer import Trainer

FOUR = [
    {"hf_layer": "transformer.h.0", "k": 4},
    {"hf_layer": "transformer.h.0", "k": 8},
    {"hf_layer": "transformer.h.1", "k": 4},
    {"hf_layer": "transformer.h.1", "k": 8},
]
NAMES = ["transformer.h.0-k4-x4", "transformer.h.0-k8-x4", "transformer.h.1-k4-x4", "transformer.h.1-k8-x4"]


def hf_overrides(tmp_path: Path, out: str, **extra: Any) -> dict[str, Any]:
    tokens = tmp_path / "tokens.npy"
    if not tokens.is_file():
        np.save(tokens, np.random.default_rng(0).integers(0, 96, size=32 * 60).astype(np.int64))
    values = dict(
        data_source="hf",
        hf_model_config=TINY_GPT2,
        hf_layer="transformer.h.0",
        hf_tokens=str(tokens),
        hf_context=32,
        hf_batch_sequences=8,
        expansion_factor=4,
        k=4,
        batch_size=124,
        total_vectors=124 * 12,
        shuffle_buffer=496,
        eval_vectors=124,
        log_every=4,
        checkpoint_every=100,
    )
    values.update(extra)
    return tiny_overrides(tmp_path / out, **values)


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("four")
    summary = Trainer(build_config(None, hf_overrides(root, "run", saes=FOUR))).run().summary
    return root, summary


def test_without_saes_a_run_trains_its_one_sae_in_out_dir(tmp_path: Path) -> None:
    cfg = build_config(None, tiny_overrides(tmp_path / "run"))
    assert sae_configs(cfg) == [("", cfg)]


def test_each_entry_gets_its_own_out_dir_named_by_layer_k_and_width(tmp_path: Path) -> None:
    cfg = build_config(None, hf_overrides(tmp_path, "run", saes=FOUR))
    assert [(name, c.out_dir) for name, c in sae_configs(cfg)] == [(n, str(tmp_path / "run" / n)) for n in NAMES]


def test_the_run_hooks_each_distinct_layer_once(tmp_path: Path) -> None:
    cfg = build_config(None, hf_overrides(tmp_path, "run", saes=FOUR))
    assert cfg.layers() == ["transformer.h.0", "transformer.h.1"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"k": 0}, r"^saes\[1\]\.k: must be > 0, got 0$"),
        ({"batch_size": 64}, r"^saes\[1\]\.batch_size: not a per-SAE key; batch_size is the run's, shared by all"),
        ({"kk": 4}, r"^saes\[1\]\.kk: not a per-SAE key; an entry may set name, hf_layer, k"),
        ({"k": 4, "name": "a"}, r"^saes\[1\]\.name: 'a' is already another entry's; give each entry its own name$"),
        ({"k": 4, "name": "a/b"}, r"^saes\[1\]\.name: a directory name under out_dir"),
    ],
)
def test_a_bad_entry_is_named_by_its_index_and_key(tmp_path: Path, entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(None, tiny_overrides(tmp_path / "run", saes=[{"k": 4, "name": "a"}, entry]))


def test_hf_layer_entries_need_an_hf_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^saes\[0\]\.hf_layer: only data_source 'hf' hooks layers"):
        build_config(None, tiny_overrides(tmp_path / "run", saes=[{"hf_layer": "transformer.h.0"}]))


def test_entries_from_the_fleet_get_their_integers_back(tmp_path: Path) -> None:
    cfg = build_config(None, tiny_overrides(tmp_path / "run", saes=[{"k": 4.0, "expansion_factor": 2.0}]))
    assert sae_configs(cfg)[0][1].k == 4


def test_every_sae_has_its_own_files(four: tuple[Path, dict[str, Any]]) -> None:
    root, _ = four
    wanted = {"metrics.jsonl", "summary.json", "status.json", "sae.safetensors", "cfg.json", "SHA256SUMS"}
    assert all(wanted <= {p.name for p in (root / "run" / name).iterdir()} for name in NAMES)


def test_the_run_summary_lists_every_sae(four: tuple[Path, dict[str, Any]]) -> None:
    root, summary = four
    on_disk = json.loads((root / "run" / "summary.json").read_text())
    assert [s["name"] for s in on_disk["saes"]] == NAMES
    assert summary["saes"][3]["k"] == 8


def test_each_sae_is_scored_with_the_lm_spliced_at_its_own_layer(four: tuple[Path, dict[str, Any]]) -> None:
    _, summary = four
    clean = {s["hf_layer"]: s["ce_loss_clean"] for s in summary["saes"]}
    zero = {s["hf_layer"]: s["ce_loss_zero_ablation"] for s in summary["saes"]}
    assert clean["transformer.h.0"] == pytest.approx(clean["transformer.h.1"])  # the same LM, the same windows
    assert zero["transformer.h.0"] != pytest.approx(zero["transformer.h.1"])  # zeroing another layer


def test_an_sae_trained_among_four_equals_the_same_sae_trained_alone(
    four: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    root, _ = four
    Trainer(build_config(None, hf_overrides(root, "alone", hf_layer="transformer.h.1", k=8))).run()
    together = load_file(str(root / "run" / NAMES[3] / "sae.safetensors"))
    alone = load_file(str(root / "alone" / "sae.safetensors"))
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        torch.testing.assert_close(together[name], alone[name], rtol=0, atol=1e-6)


def test_a_stopped_multi_sae_run_resumes_to_the_same_weights(four: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    root, _ = four
    staged = hf_overrides(root, "staged", saes=FOUR, checkpoint_every=4)
    assert Trainer(build_config(None, {**staged, "stop_after_steps": 6})).run().state == "stopped"
    resumed = Trainer(build_config(None, staged))
    assert resumed.run().state == "finished"
    for name in NAMES:
        a = load_file(str(root / "staged" / name / "sae.safetensors"))
        b = load_file(str(root / "run" / name / "sae.safetensors"))
        torch.testing.assert_close(a["W_dec"], b["W_dec"], rtol=0, atol=1e-6)


def test_resuming_with_another_list_of_saes_is_refused(four: tuple[Path, dict[str, Any]]) -> None:
    root, _ = four
    staged = hf_overrides(root, "changed", saes=FOUR[:2], checkpoint_every=4, stop_after_steps=4)
    Trainer(build_config(None, staged)).run()
    with pytest.raises(ConfigError, match=r"^saes: the checkpoint in .* holds SAEs .*a changed list of SAEs needs"):
        Trainer(build_config(None, {**staged, "saes": FOUR[:3], "stop_after_steps": None})).run()


def test_prefetching_the_next_window_yields_the_same_batches(tmp_path: Path) -> None:
    cfg = build_config(None, hf_overrides(tmp_path, "run", saes=FOUR))
    cfg.d_in = 32
    source = build_source(cfg, torch.device("cpu"), cfg.layers())
    plain = ShuffledStream(source, 124, 496, seed=5)
    ahead = ShuffledStream(source, 124, 496, seed=5, prefetch=True)
    try:
        for _ in range(9):  # across windows and into the next epoch
            assert torch.equal(plain.next_batch(), ahead.next_batch())
    finally:
        ahead.close()

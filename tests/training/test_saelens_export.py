"""Every run also exports the SAELens 6 layout (cfg.json + sae_weights.safetensors); load_sae reads both layouts; and
SAELens itself (the benchmark venv) loads our export and computes the same codes and reconstruction."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, TINY_GPT2, subprocess_env, tiny_overrides
from safetensors.torch import load_file

from training.config import build_config
from training.outputs import load_sae
from training.saelens_format import transformer_lens_hook
from training.trainer import Trainer


def bench_python() -> str | None:
    """A Python with sae-lens: $LAMBDA_SAE_BENCH_PYTHON, else the venv requirements-bench.txt names."""
    candidates = [
        os.environ.get("LAMBDA_SAE_BENCH_PYTHON"),
        str(Path.home() / ".cache/lambda-sae/venv-bench/bin/python"),
    ]
    for candidate in filter(None, candidates):
        if Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished tiny run per architecture, plus an hf run (random GPT-2) for the model metadata."""
    root = tmp_path_factory.mktemp("export")
    out = {}
    for arch in ("topk", "batchtopk"):
        out[arch] = root / arch
        Trainer(build_config(None, tiny_overrides(out[arch], architecture=arch, total_vectors=256 * 40))).run()
    np.save(root / "tokens.npy", np.random.default_rng(0).integers(0, 96, size=32 * 40).astype(np.int64))
    out["hf"] = root / "hf"
    hf = dict(
        data_source="hf",
        hf_model_config=TINY_GPT2,
        hf_layer="transformer.h.1",
        hf_tokens=str(root / "tokens.npy"),
        hf_context=32,
        hf_batch_sequences=8,
        expansion_factor=4,
        k=4,
        batch_size=124,
        total_vectors=124 * 10,
        shuffle_buffer=496,
        eval_vectors=124,
    )
    Trainer(build_config(None, tiny_overrides(out["hf"], **hf))).run()
    return out


def test_topk_export_has_the_fields_saelens_6_reads(runs: dict[str, Path]) -> None:
    cfg = json.loads((runs["topk"] / "cfg.json").read_text())
    assert {k: cfg[k] for k in ("architecture", "d_in", "d_sae", "k", "dtype")} == {
        "architecture": "topk",
        "d_in": 32,
        "d_sae": 256,
        "k": 6,
        "dtype": "float32",
    }
    assert cfg["normalize_activations"] == "none"
    assert cfg["apply_b_dec_to_input"] is True
    assert cfg["metadata"]["sae_lens_version"].startswith("6.")  # else SAELens renames it as a pre-6 config


def test_saelens_weights_have_w_enc_as_d_in_by_d_sae(runs: dict[str, Path]) -> None:
    theirs = load_file(str(runs["topk"] / "sae_weights.safetensors"))
    ours = load_file(str(runs["topk"] / "sae.safetensors"))
    assert {k: tuple(v.shape) for k, v in theirs.items()} == {
        "W_enc": (32, 256),
        "b_enc": (256,),
        "W_dec": (256, 32),
        "b_dec": (32,),
    }
    assert torch.equal(theirs["W_enc"], ours["W_enc"].t())


def test_batchtopk_exports_as_jumprelu_with_its_threshold_in_every_latent(runs: dict[str, Path]) -> None:
    cfg = json.loads((runs["batchtopk"] / "cfg.json").read_text())
    theirs = load_file(str(runs["batchtopk"] / "sae_weights.safetensors"))
    ours = load_file(str(runs["batchtopk"] / "sae.safetensors"))
    assert cfg["architecture"] == "jumprelu"
    assert "k" not in cfg  # JumpReLUSAEConfig has no k field
    assert cfg["metadata"]["trained_architecture"] == "batchtopk"
    assert cfg["metadata"]["k"] == 6
    assert theirs["threshold"].shape == (256,)
    assert torch.equal(theirs["threshold"], ours["threshold"].expand(256))


def test_hf_runs_name_model_hook_and_context(runs: dict[str, Path]) -> None:
    meta = json.loads((runs["hf"] / "cfg.json").read_text())["metadata"]
    assert meta["hook_name"] == "blocks.1.hook_resid_post"
    assert meta["hf_hook_module"] == "transformer.h.1"
    assert meta["context_size"] == 32
    assert meta["seqpos_slice"] == [1, None]  # the first position of each window is skipped


def test_transformer_lens_hook_names_block_outputs_only() -> None:
    assert transformer_lens_hook("model.layers.19") == "blocks.19.hook_resid_post"
    assert transformer_lens_hook("model.layers.19.mlp") is None


@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
def test_load_sae_reads_a_saelens_layout_directory(runs: dict[str, Path], tmp_path: Path, arch: str) -> None:
    only_saelens = tmp_path / "saelens"
    only_saelens.mkdir()
    for name in ("cfg.json", "sae_weights.safetensors"):
        shutil.copy(runs[arch] / name, only_saelens / name)
    x = torch.randn(128, 32, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(load_sae(only_saelens).codes(x), load_sae(runs[arch]).codes(x), rtol=0, atol=1e-6)


def test_load_sae_refuses_per_latent_thresholds(runs: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import save_file

    weights = load_file(str(runs["batchtopk"] / "sae_weights.safetensors"))
    weights["threshold"] = torch.linspace(0.1, 0.2, 256)
    save_file(weights, str(tmp_path / "sae_weights.safetensors"))
    shutil.copy(runs["batchtopk"] / "cfg.json", tmp_path / "cfg.json")
    with pytest.raises(ValueError, match="per-latent thresholds; only one shared threshold"):
        load_sae(tmp_path)


def test_saelens_loads_our_export_and_reproduces_codes_and_reconstruction(runs: dict[str, Path]) -> None:
    python = bench_python()
    if python is None:
        message = (
            "NO SAE-LENS: the SAELens round trip did not run. Build the benchmark venv (python3 -m venv "
            "~/.cache/lambda-sae/venv-bench && ~/.cache/lambda-sae/venv-bench/bin/pip install -r requirements.txt "
            "-r requirements-bench.txt) or set LAMBDA_SAE_BENCH_PYTHON"
        )
        if os.environ.get("LAMBDA_SAE_REQUIRE_SAELENS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    check = subprocess.run(
        [python, "-m", "training.saelens_check", str(runs["topk"]), str(runs["batchtopk"]), str(runs["hf"])],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    results = [json.loads(line) for line in check.stdout.splitlines()]
    assert [r["saelens_class"] for r in results] == ["TopKSAE", "JumpReLUSAE", "TopKSAE"]
    assert max(max(r["codes_max_abs_diff"], r["recon_max_abs_diff"]) for r in results) <= 1e-5
    assert all(r["same_active_set"] for r in results)

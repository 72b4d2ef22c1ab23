"""Whole training runs: planted-feature recovery, resume equality, SIGTERM, two-process DDP (gloo), HF hook."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, TINY_GPT2, free_port, subprocess_env, tiny_overrides
from safetensors.torch import load_file

from training.config import build_config
from training.data import PURPOSE_SHUFFLE, HFActivationSource, make_generator
from training.evaluate import spliced_lm_loss
from training.outputs import load_sae
from training.trainer import Trainer


def _train(overrides: dict) -> dict:
    return Trainer(build_config(None, overrides)).run().summary


def test_planted_features_are_recovered(tmp_path: Path) -> None:
    summary = _train(tiny_overrides(tmp_path / "run", total_vectors=256 * 600, plot=True))
    assert summary["recovery_at_init"] < 0.5  # the init does not replay the planted dictionary
    assert summary["recovery"] > 0.85  # mean best cosine of the planted directions with a decoder row
    assert summary["fvu"] < 0.25
    assert summary["dead_fraction"] <= 0.03
    assert 5 < summary["l0"] <= 6
    out = tmp_path / "run"
    weights = load_file(str(out / "sae.safetensors"))
    assert weights["W_dec"].shape == (256, 32)
    assert weights["W_enc"].shape == (256, 32)
    assert weights["b_enc"].shape == (256,)
    assert weights["b_dec"].shape == (32,)
    assert json.loads((out / "sae_config.json").read_text())["d_sae"] == 256
    assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "finished"
    assert status["step"] == 600
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(20, 601, 20))
    assert json.loads(lines[-1])["fvu"] < json.loads(lines[0])["fvu"]


def test_stopped_and_resumed_run_matches_uninterrupted(tmp_path: Path) -> None:
    _train(tiny_overrides(tmp_path / "straight", decode_impl="sparse"))
    stopped = _train(tiny_overrides(tmp_path / "staged", decode_impl="sparse", stop_after_steps=50))
    assert stopped["state"] == "stopped"
    assert stopped["steps"] == 50
    assert (tmp_path / "staged" / "checkpoints" / "latest").read_text().strip() == "step_00000050"
    resumed = _train(tiny_overrides(tmp_path / "staged", decode_impl="sparse"))
    assert resumed["state"] == "finished"
    assert resumed["steps"] == 120
    a = load_file(str(tmp_path / "straight" / "sae.safetensors"))
    b = load_file(str(tmp_path / "staged" / "sae.safetensors"))
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=1e-5, rtol=1e-4)
    steps = [json.loads(line)["step"] for line in (tmp_path / "staged" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(20, 121, 20))


def _cli(out_dir: Path, **extra: object) -> list[str]:
    args = [sys.executable, "-m", "training.train"]
    for key, value in tiny_overrides(out_dir, **extra).items():
        args += ["--set", f"{key}={value}"]
    return args


def test_sigterm_checkpoints_then_exits(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _cli(out, total_vectors=256 * 1_000_000, log_every=5, checkpoint_every=100_000),
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status_path = out / "status.json"
            if status_path.is_file() and json.loads(status_path.read_text())["step"] >= 10:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("run never reached step 10")
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "stopped"
    assert status["reason"] == "sigterm"
    latest = (out / "checkpoints" / "latest").read_text().strip()
    assert latest == f"step_{status['step']:08d}"
    state = torch.load(out / "checkpoints" / latest / "state.pt", weights_only=False)
    assert state["step"] == status["step"]
    assert "optimizer" in state
    # the same command resumes from that checkpoint
    again = subprocess.run(
        _cli(out, total_vectors=256 * (status["step"] + 5)),
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resumed at step {status['step']}" in again.stdout
    assert json.loads((out / "summary.json").read_text())["steps"] == status["step"] + 5


def test_two_process_ddp_with_gloo(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    args = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc-per-node=2",
        "--master-addr=127.0.0.1",
        f"--master-port={free_port()}",
        "-m",
        "training.train",
    ]
    args += _cli(out, total_vectors=256 * 60)[3:]
    proc = subprocess.run(args, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["steps"] == 60
    assert summary["fvu"] < 0.6
    assert proc.stdout.count("finished (completed)") == 1  # rank 0 alone reports and writes
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [20, 40, 60]
    state = torch.load(out / "checkpoints" / "step_00000060" / "state.pt", weights_only=False)
    assert state["world"] == 2
    assert len(state["streams"]) == 2  # every rank's data position is saved


def test_hf_hook_on_tiny_random_model(tmp_path: Path) -> None:
    tokens = np.random.default_rng(0).integers(0, 96, size=64 * 40).astype(np.int64)
    np.save(tmp_path / "tokens.npy", tokens)
    model_config = TINY_GPT2
    overrides = dict(
        data_source="hf",
        hf_model_config=model_config,
        hf_layer="transformer.h.0",
        hf_tokens=str(tmp_path / "tokens.npy"),
        hf_context=32,
        hf_batch_sequences=8,
        expansion_factor=4,
        k=4,
        batch_size=124,
        total_vectors=124 * 30,
        shuffle_buffer=496,
        log_every=10,
        checkpoint_every=100,
        threads=1,
        out_dir=str(tmp_path / "run"),
        plot=False,
    )
    cfg = build_config(None, overrides)
    source = HFActivationSource(cfg, torch.device("cpu"), seed=0)
    assert source.d_in == 32
    acts = source.chunk(0, 0)
    assert acts.shape == (8 * 31, 32)  # first position of each window skipped
    # the hooked output equals the model's own hidden state after block 0
    order = torch.randperm(source.n_windows, generator=make_generator(0, PURPOSE_SHUFFLE, 0))[:8].tolist()
    ids = torch.as_tensor(np.stack([tokens[w * 32 : (w + 1) * 32] for w in order]))
    with torch.no_grad():
        hidden = source.model(ids, output_hidden_states=True).hidden_states[1][:, 1:]
    torch.testing.assert_close(acts, hidden.reshape(-1, 32))
    assert source.n_windows == 72
    assert source.holdout_windows == 8  # the last tenth of the 80 windows is held out
    held = source.heldout()
    assert held is not None
    assert held.shape == (8 * 31, 32)
    with torch.no_grad():
        last = torch.as_tensor(tokens[72 * 32 :].reshape(8, 32))
        torch.testing.assert_close(
            held, source.model(last, output_hidden_states=True).hidden_states[1][:, 1:].reshape(-1, 32)
        )
    # The spliced-loss eval replaces the hooked output: by itself it changes nothing, by zeros it is the floor.
    windows = source.heldout_windows()
    assert windows.shape == (8, 32)
    assert torch.equal(windows, last)
    same = spliced_lm_loss(
        source.model, source.module, windows, lambda h: h, skip_first=True, max_logit_elements=1
    )  # one window at a time
    assert same["ce_loss_with_sae"] == pytest.approx(same["ce_loss_clean"], abs=1e-5)
    assert same["kl_with_sae"] == pytest.approx(0.0, abs=1e-5)
    assert same["ce_loss_recovered"] == pytest.approx(1.0)
    zero = spliced_lm_loss(source.model, source.module, windows, torch.zeros_like, skip_first=True)
    assert zero["ce_loss_with_sae"] == pytest.approx(zero["ce_loss_zero_ablation"])
    assert zero["ce_loss_recovered"] == pytest.approx(0.0, abs=1e-6)
    assert zero["kl_with_sae"] > 0
    summary = Trainer(cfg).run().summary
    assert summary["d_in"] == 32
    assert summary["steps"] == 30
    assert summary["metrics_source"] == "held-out token windows' activations (248, never trained on)"
    assert summary["fvu"] < 1.0
    # the trained SAE spliced in: a real, different loss (neither the clean one nor the floor)
    assert summary["ce_loss_clean"] == pytest.approx(same["ce_loss_clean"])
    assert summary["kl_with_sae"] > 0
    assert summary["delta_lm_loss"] == pytest.approx(summary["ce_loss_with_sae"] - summary["ce_loss_clean"])
    assert summary["ce_loss_with_sae"] != pytest.approx(summary["ce_loss_zero_ablation"])
    assert load_file(str(tmp_path / "run" / "sae.safetensors"))["W_dec"].shape == (128, 32)


def test_bf16_autocast_path_trains(tmp_path: Path) -> None:
    """The CUDA precision path (bf16 autocast encoder, fp32 master weights), exercised on CPU autocast."""
    summary = _train(tiny_overrides(tmp_path / "bf16", precision="bf16", total_vectors=256 * 60))
    assert summary["precision"] == "bf16"
    assert summary["steps"] == 60
    weights = load_file(str(tmp_path / "bf16" / "sae.safetensors"))
    assert all(t.dtype == torch.float32 for t in weights.values())
    steps = [json.loads(line) for line in (tmp_path / "bf16" / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1]["fvu"] < steps[0]["fvu"] < 1.0


def test_plateau_and_max_hours_stop_early(tmp_path: Path) -> None:
    plateau = _train(
        tiny_overrides(
            tmp_path / "plateau", plateau_patience=2, plateau_min_delta=0.5, total_vectors=256 * 400, log_every=10
        )
    )
    assert plateau["state"] == "finished"
    assert plateau["reason"] == "plateau"
    assert plateau["steps"] < 400
    assert (tmp_path / "plateau" / "sae.safetensors").is_file()
    timed = _train(tiny_overrides(tmp_path / "timed", max_hours=1e-9, total_vectors=256 * 400))
    assert timed["state"] == "stopped"
    assert timed["reason"] == "max_hours"
    assert timed["steps"] == 1
    status = json.loads((tmp_path / "timed" / "status.json").read_text())
    assert status["state"] == "stopped"
    assert status["reason"] == "max_hours"
    assert (tmp_path / "timed" / "checkpoints" / "step_00000001" / "state.pt").is_file()


def test_shard_run_reports_metrics_on_held_out_rows(tmp_path: Path) -> None:
    from training.data import PlantedFeatures

    planted = PlantedFeatures(32, 64, 4, 1.1, 0.02, 1.0, seed=3)
    np.save(tmp_path / "acts.npy", planted.sample(20_000, make_generator(3, 99)).numpy())
    summary = _train(
        dict(
            data_source="shards",
            shard_paths=str(tmp_path / "acts.npy"),
            expansion_factor=4,
            k=4,
            batch_size=256,
            total_vectors=256 * 150,
            eval_vectors=1_000,
            log_every=50,
            threads=1,
            out_dir=str(tmp_path / "run"),
            plot=False,
        )
    )
    assert summary["metrics_source"] == "held-out shard rows (1000, never trained on)"
    assert 0 < summary["fvu"] < 0.5
    assert 3 < summary["l0"] <= 4


def test_an_exported_sae_loads_back_and_encodes_as_trained(tmp_path: Path) -> None:
    trainer = Trainer(build_config(None, tiny_overrides(tmp_path / "run", architecture="batchtopk")))
    trainer.run()
    sae = load_sae(tmp_path / "run")
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(3))
    codes = sae.codes(x)
    assert codes.shape == (64, 256)
    assert float(sae.threshold) > 0
    torch.testing.assert_close(codes, trainer.sae.codes(x))  # the BatchTopK threshold came back with the weights
    vals, idx, _, _ = sae.encode(x, inference=True)
    torch.testing.assert_close(sae.decode(vals, idx), codes @ sae.W_dec + sae.b_dec)
    with pytest.raises(FileNotFoundError, match=r"no-run: not found; give a run's out_dir"):
        load_sae(tmp_path / "no-run")


def test_exported_files_are_summed_for_sha256sum(tmp_path: Path) -> None:
    Trainer(build_config(None, tiny_overrides(tmp_path / "run", plot=True))).run()
    names = [line.split("  ", 1)[1] for line in (tmp_path / "run" / "SHA256SUMS").read_text().splitlines()]
    assert names == [
        "sae.safetensors",
        "sae_config.json",
        "sae_weights.safetensors",
        "cfg.json",
        "summary.json",
        "metrics.jsonl",
        "training_curves.png",
    ]
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path / "run", capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

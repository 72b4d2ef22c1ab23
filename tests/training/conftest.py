"""Shared helpers for the trainer tests: repo root on sys.path, small configs, a subprocess environment."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

torch.set_num_threads(1)  # tiny problems: a second thread only adds OpenMP sync cost


# A random two-block GPT-2 (no download): the hf source's model in the trainer tests.
TINY_GPT2 = {"model_type": "gpt2", "n_layer": 2, "n_embd": 32, "n_head": 2, "vocab_size": 96, "n_positions": 64}


def tiny_overrides(out_dir: Path, **extra: Any) -> dict[str, Any]:
    """A small planted-feature problem that trains in a few seconds on one or two threads."""
    values: dict[str, Any] = dict(
        data_source="synthetic",
        d_in=32,
        expansion_factor=8,
        k=6,
        synthetic_features=256,
        synthetic_active=3.0,
        synthetic_pool=16384,
        shuffle_buffer=8192,
        eval_vectors=4096,
        batch_size=256,
        total_vectors=256 * 120,
        threads=1,
        log_every=20,
        checkpoint_every=40,
        out_dir=str(out_dir),
        plot=False,
    )
    values.update(extra)
    return values


def subprocess_env(threads: int = 1) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = str(threads)
    env["MASTER_ADDR"] = "127.0.0.1"
    env["GLOO_SOCKET_IFNAME"] = "lo"
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def repo() -> Path:
    return REPO

"""Atomic checkpoints: each is a directory `<out_dir>/checkpoints/step_NNNNNNNN/state.pt`, written under a temporary
name and renamed into place; `checkpoints/latest` (replaced atomically) names the newest complete one."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

LATEST = "latest"


def write_json_atomic(path: Path, payload: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """The JSON in `path`, or None when it is missing or not (yet) valid JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def save_checkpoint(checkpoint_dir: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir / f"step_{step:08d}"
    tmp = checkpoint_dir / f".tmp_step_{step:08d}_{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    torch.save(state, tmp / "state.pt")
    with open(tmp / "state.pt", "rb") as handle:
        os.fsync(handle.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    latest_tmp = checkpoint_dir / f".{LATEST}.tmp{os.getpid()}"
    latest_tmp.write_text(final.name + "\n")
    os.replace(latest_tmp, checkpoint_dir / LATEST)
    for old in sorted(checkpoint_dir.glob("step_*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest complete checkpoint: the one `latest` names, else the highest step directory holding state.pt."""
    pointer = checkpoint_dir / LATEST
    if pointer.is_file():
        named = checkpoint_dir / pointer.read_text().strip()
        if (named / "state.pt").is_file():
            return named
    complete = [d for d in sorted(checkpoint_dir.glob("step_*")) if (d / "state.pt").is_file()]
    return complete[-1] if complete else None


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path / "state.pt", map_location="cpu", weights_only=False)

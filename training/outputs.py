"""Files a run leaves in its out_dir (rank 0 only): metrics.jsonl, status.json, summary.json, sae.safetensors +
sae_config.json (our layout), cfg.json + sae_weights.safetensors (SAELens's, see `saelens_format`),
training_curves.png, and SHA256SUMS over the exported ones (`sha256sum -c` format)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from training.checkpoint import write_json_atomic
from training.sae import SparseAutoencoder
from training.saelens_format import CFG_FILE, WEIGHTS_FILE, is_saelens_dir, read_saelens, write_saelens

SUMS_FILE = "SHA256SUMS"
# What a finished (or stopped) run exports, in this order; status.json keeps changing and checkpoints/ are the
# optimizer's, so neither is summed.
EXPORTED_FILES = (
    "sae.safetensors",
    "sae_config.json",
    WEIGHTS_FILE,
    CFG_FILE,
    "summary.json",
    "metrics.jsonl",
    "training_curves.png",
)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def parse_sums(text: str) -> dict[str, str]:
    """`<hex>  <name>` lines (sha256sum's text mode; a `*` before the name is binary mode) -> {name: hex}."""
    sums = {}
    for line in text.splitlines():
        digest, _, name = line.strip().partition(" ")
        if digest and name:
            sums[name.strip().lstrip("*")] = digest.lower()
    return sums


class RunOutputs:
    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = out_dir / "metrics.jsonl"

    def truncate_metrics_after(self, step: int) -> None:
        """On resume, drop metric lines logged after the checkpoint so the file matches the replayed run."""
        if not self.metrics_path.is_file():
            return
        kept = [
            line
            for line in self.metrics_path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step
        ]
        self.metrics_path.write_text("".join(line + "\n" for line in kept))

    def append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.metrics_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def write_status(
        self, state: str, step: int, total_steps: int, metrics: dict[str, Any] | None = None, reason: str | None = None
    ) -> None:
        write_json_atomic(
            self.out_dir / "status.json",
            {"state": state, "step": step, "total_steps": total_steps, "reason": reason, "metrics": metrics or {}},
        )

    def write_summary(self, summary: dict[str, Any]) -> None:
        """The run's last export (after the SAE and the plot): the sums are written here, over every exported file."""
        write_json_atomic(self.out_dir / "summary.json", summary)
        self.write_sums()

    def write_sums(self) -> None:
        names = [name for name in EXPORTED_FILES if (self.out_dir / name).is_file()]
        lines = "".join(f"{file_sha256(self.out_dir / name)}  {name}\n" for name in names)
        tmp = self.out_dir / f".{SUMS_FILE}.tmp{os.getpid()}"
        tmp.write_text(lines)
        tmp.replace(self.out_dir / SUMS_FILE)

    def export_sae(self, sae: SparseAutoencoder, sae_config: dict[str, Any]) -> None:
        tmp = self.out_dir / ".sae.safetensors.tmp"
        save_file(sae.export_state(), str(tmp), metadata={"format": "pt"})
        tmp.replace(self.out_dir / "sae.safetensors")
        write_json_atomic(self.out_dir / "sae_config.json", sae_config)
        write_saelens(self.out_dir, sae, sae_config.get("train_config") or {}, sae_config.get("activations"))

    def plot(self) -> Path | None:
        records = self.read_metrics()
        if not records:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = [r["step"] for r in records]
        panels = [("fvu", "FVU"), ("l0", "L0"), ("dead_fraction", "dead fraction"), ("lr", "learning rate")]
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
        for ax, (key, title) in zip(axes, panels, strict=True):
            ax.plot(steps, [r.get(key, float("nan")) for r in records])
            ax.set_title(title)
            ax.set_xlabel("step")
            if key == "fvu":
                ax.set_yscale("log")
        fig.tight_layout()
        path = self.out_dir / "training_curves.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


def load_sae(path: str | Path, device: torch.device | str = "cpu") -> SparseAutoencoder:
    """The SAE a run exported, in eval mode: `sae.codes(x)` for latent activations, `sae.encode(x, inference=True)` /
    `sae.decode(vals, idx)` for the sparse form. `path` is a run's out_dir (our `sae.safetensors` +
    `sae_config.json`, else its SAELens `cfg.json` + `sae_weights.safetensors`), our sae.safetensors itself, or any
    SAELens-layout directory of a topk SAE or a jumprelu one with a single threshold (an exported BatchTopK)."""
    path = Path(path)
    if path.is_dir() and not (path / "sae_config.json").is_file() and is_saelens_dir(path):
        return read_saelens(path, device)
    weights_path = path / "sae.safetensors" if path.is_dir() else path
    config_path = weights_path.parent / "sae_config.json"
    for needed in (weights_path, config_path):
        if not needed.is_file():
            raise FileNotFoundError(
                f"{needed}: not found; give a run's out_dir (or its sae.safetensors, or a SAELens directory with "
                f"{CFG_FILE} and {WEIGHTS_FILE}) after the run finished or stopped"
            )
    config = json.loads(config_path.read_text())
    weights = load_file(str(weights_path))
    candidates = (config.get("train_config") or {}).get("batchtopk_candidates", 4)
    sae = SparseAutoencoder(
        config["d_in"],
        config["d_sae"],
        config["k"],
        config["architecture"],
        batchtopk_candidates=candidates,
        device=device,
    )
    with torch.no_grad():
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            target = getattr(sae, name)
            if weights[name].shape != target.shape:
                raise ValueError(
                    f"{weights_path}: {name} is {tuple(weights[name].shape)}, sae_config.json says "
                    f"{tuple(target.shape)}"
                )
            target.copy_(weights[name])
        if "threshold" in weights:
            sae.threshold.copy_(weights["threshold"].reshape(()))
    return sae.eval()

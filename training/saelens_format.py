"""The SAELens 6 layout of an SAE directory: `cfg.json` + `sae_weights.safetensors`, written next to our own
`sae_config.json` + `sae.safetensors` by every run, and read back by `training.outputs.load_sae`.

What `sae_lens.SAE.load_from_disk` reads (sae-lens 6.54, `sae_lens_disk_loader` -> `SAEConfig.from_dict`):
`cfg.json` top-level fields d_in, d_sae, dtype, device, apply_b_dec_to_input, normalize_activations,
reshape_activations, architecture (+ k and rescale_acts_by_decoder_norm for `topk`), and `metadata` with
`sae_lens_version` >= 6 (an older or missing version sends the config through its pre-6 renaming); the weights
W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in] (+ threshold [d_sae] for `jumprelu`).

TopK exports as `topk` (`topk(W_enc^T (x - b_dec) + b_enc)` then ReLU: ours exactly). BatchTopK exports as SAELens
exports its own BatchTopK SAEs for inference: `jumprelu` with the learnt threshold in every latent (a latent is
active when its pre-activation is above the threshold), which is what our BatchTopK does at inference too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from training.checkpoint import write_json_atomic
from training.sae import SparseAutoencoder

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
# The SAELens release whose loader this layout was checked against (tests/training/test_saelens_export.py loads it).
SAELENS_FORMAT_VERSION = "6.54.12"
_LAYER = re.compile(r"^(?:model\.layers|transformer\.h|gpt_neox\.layers|model\.decoder\.layers)\.(\d+)$")


def transformer_lens_hook(hf_layer: str | None) -> str | None:
    """The TransformerLens hook name of a decoder block's output (`model.layers.16` -> `blocks.16.hook_resid_post`),
    which is what SAELens, SAEBench and Neuronpedia call a residual-stream SAE's hook; None when not a block."""
    match = _LAYER.match(hf_layer or "")
    return f"blocks.{match.group(1)}.hook_resid_post" if match else None


def saelens_config(
    sae: SparseAutoencoder, train: dict[str, Any], activations: dict[str, Any] | None = None
) -> dict[str, Any]:
    """cfg.json for `sae` trained with the TrainConfig dict `train` (on an activation cache with that `activations`
    manifest, for a shards run: the model, layer and context come from it)."""
    topk = sae.architecture == "topk"
    context = train.get("hf_context") if train.get("data_source") == "hf" else None
    skip_first = bool(train.get("hf_skip_first_token")) and context is not None
    if activations is not None and train.get("data_source") == "shards":
        train = {**train, "hf_model": activations.get("model"), "hf_layer": activations.get("layer")}
        context, skip_first = activations.get("context"), bool(activations.get("skip_first_token"))
    cfg: dict[str, Any] = {
        "d_in": sae.d_in,
        "d_sae": sae.n_latents,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "architecture": "topk" if topk else "jumprelu",
        "metadata": {
            "sae_lens_version": SAELENS_FORMAT_VERSION,
            "sae_lens_training_version": None,
            "trained_with": "lambda-sae training (TopK / BatchTopK)",
            "trained_architecture": sae.architecture,
            "model_name": train.get("hf_model"),
            "hook_name": transformer_lens_hook(train.get("hf_layer")) or train.get("hf_layer"),
            "hf_hook_module": train.get("hf_layer"),
            "hook_head_index": None,
            "context_size": context,
            "prepend_bos": None,
            "seqpos_slice": [1, None] if skip_first else [None],
            "dataset_path": train.get("hf_tokens") or train.get("hf_text_files") or train.get("shard_paths") or None,
            "k": sae.k,
        },
    }
    if topk:
        cfg["k"] = sae.k
        cfg["rescale_acts_by_decoder_norm"] = False
    return cfg


def saelens_weights(sae: SparseAutoencoder) -> dict[str, torch.Tensor]:
    ours = sae.export_state()
    out = {
        "W_enc": ours["W_enc"].t().contiguous(),
        "b_enc": ours["b_enc"],
        "W_dec": ours["W_dec"],
        "b_dec": ours["b_dec"],
    }
    if sae.architecture == "batchtopk":
        out["threshold"] = ours["threshold"].reshape(()).expand(sae.n_latents).contiguous()
    return out


def write_saelens(
    out_dir: Path, sae: SparseAutoencoder, train: dict[str, Any], activations: dict[str, Any] | None = None
) -> None:
    tmp = out_dir / f".{WEIGHTS_FILE}.tmp"
    save_file(saelens_weights(sae), str(tmp), metadata={"format": "pt"})
    tmp.replace(out_dir / WEIGHTS_FILE)
    write_json_atomic(out_dir / CFG_FILE, saelens_config(sae, train, activations))


def is_saelens_dir(path: Path) -> bool:
    return (path / CFG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def read_saelens(path: Path, device: torch.device | str = "cpu") -> SparseAutoencoder:
    """A SAELens-layout directory (ours or anyone's topk / jumprelu with one threshold) as our SparseAutoencoder."""
    cfg = json.loads((path / CFG_FILE).read_text())
    weights = load_file(str(path / WEIGHTS_FILE))
    where = path / CFG_FILE
    architecture = cfg.get("architecture")
    for key, wanted in (("apply_b_dec_to_input", True), ("normalize_activations", "none")):
        if cfg.get(key, wanted) != wanted:
            raise ValueError(f"{where}: {key} is {cfg.get(key)!r}; only {wanted!r} loads as our SAE (use sae_lens)")
    if cfg.get("rescale_acts_by_decoder_norm"):
        raise ValueError(f"{where}: rescale_acts_by_decoder_norm is true; only false loads as our SAE (use sae_lens)")
    d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    if architecture == "topk":
        sae = SparseAutoencoder(d_in, d_sae, int(cfg["k"]), "topk", device=device)
    elif architecture == "jumprelu":
        threshold = weights["threshold"].float()
        if not torch.all(threshold == threshold[0]):
            raise ValueError(
                f"{where}: a jumprelu SAE with per-latent thresholds; only one shared threshold (an exported "
                "BatchTopK SAE) loads as our SAE (use sae_lens for the others)"
            )
        k = int((cfg.get("metadata") or {}).get("k") or 1)
        sae = SparseAutoencoder(d_in, d_sae, k, "batchtopk", device=device)
        with torch.no_grad():
            sae.threshold.fill_(float(threshold[0]))
    else:
        raise ValueError(f"{where}: architecture {architecture!r}; load_sae reads topk and jumprelu (use sae_lens)")
    expected = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    with torch.no_grad():
        for name, shape in expected.items():
            if name not in weights or tuple(weights[name].shape) != shape:
                got = tuple(weights[name].shape) if name in weights else "missing"
                raise ValueError(f"{path / WEIGHTS_FILE}: {name} is {got}, cfg.json says {shape}")
            value = weights[name].float()
            getattr(sae, name).copy_(value.t() if name == "W_enc" else value)
    return sae.eval()

"""Per-token features at an SAE's layer: raw activations, SAE codes and binarised codes. Activations come from
the model and layer named in the SAE's config, in batches bounded by a token budget; codes are kept sparse
(scipy CSR) so that a wide SAE on many tokens fits in memory."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from training.config import TrainConfig
from training.probe.tokens import ByteTokenizer, HFTokenizer, Tokenizer, TokenTable
from training.sae import SparseAutoencoder

FEATURE_KINDS = ("raw", "sae", "sae_binary")
Features = np.ndarray | sp.csr_matrix


class _StopForward(Exception):
    pass


def load_model(cfg: TrainConfig, device: torch.device) -> tuple[torch.nn.Module, Tokenizer]:
    """The model the SAE was trained on, built the way `data.HFActivationSource` builds it (a from-config model gets
    the same random weights from the same data seed), and its tokenizer (a byte tokenizer for a from-config one)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    tokenizer: Tokenizer
    if cfg.hf_model_config is not None:
        spec = dict(cfg.hf_model_config)
        model_type = spec.pop("model_type")
        torch.manual_seed(cfg.seeds()[0])
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **spec))
        tokenizer = ByteTokenizer(int(model.config.vocab_size))
    else:
        model = AutoModelForCausalLM.from_pretrained(cfg.hf_model, dtype=dtype)
        tokenizer = HFTokenizer(AutoTokenizer.from_pretrained(cfg.hf_model))
    return model.to(device=device, dtype=dtype).eval(), tokenizer


def _batches(table: TokenTable, max_tokens: int) -> list[list[int]]:
    """Example indices grouped by length so that a padded batch holds at most `max_tokens` positions."""
    order = sorted(range(len(table.ids)), key=lambda e: len(table.ids[e]))
    batches: list[list[int]] = []
    for e in order:
        if batches and (len(batches[-1]) + 1) * len(table.ids[e]) <= max_tokens:
            batches[-1].append(e)
        else:
            batches.append([e])
    return batches


@torch.no_grad()
def layer_activations(
    model: torch.nn.Module, layers: Sequence[str], table: TokenTable, device: torch.device, max_tokens: int = 8192
) -> dict[str, np.ndarray]:
    """{layer: [tokens, d_model] float32} for the table's scored tokens, in table order; one forward per batch
    (right-padded, so causal attention leaves the real positions as they are), stopped after the deepest layer."""
    modules = {name: model.get_submodule(name) for name in layers}
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    last = max(layers, key=lambda n: order[n])
    per_example: dict[str, list[np.ndarray | None]] = {name: [None] * len(table.ids) for name in layers}
    captured: dict[str, Tensor] = {}

    def hook_for(name: str) -> Callable[..., None]:
        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            captured[name] = output[0] if isinstance(output, tuple) else output
            if name == last:
                raise _StopForward

        return hook

    limit = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
    longest = max(range(len(table.ids)), key=lambda e: len(table.ids[e]))
    if limit and len(table.ids[longest]) > limit:
        raise ValueError(
            f"example {longest} is {len(table.ids[longest])} tokens, more than the model's {limit} "
            "positions; shorten or split that text"
        )
    handles = [modules[name].register_forward_hook(hook_for(name)) for name in layers]
    try:
        for batch in _batches(table, max_tokens):
            width = max(len(table.ids[e]) for e in batch)
            ids = torch.zeros(len(batch), width, dtype=torch.long)
            mask = torch.zeros(len(batch), width, dtype=torch.long)
            for row, e in enumerate(batch):
                ids[row, : len(table.ids[e])] = torch.as_tensor(table.ids[e])
                mask[row, : len(table.ids[e])] = 1
            captured.clear()
            with contextlib.suppress(_StopForward):  # the hook stops the forward after the deepest layer
                model(input_ids=ids.to(device), attention_mask=mask.to(device))
            for name in layers:
                acts = captured[name].float().cpu().numpy()
                for row, e in enumerate(batch):
                    per_example[name][e] = acts[row, table.positions[e]]
    finally:
        for handle in handles:
            handle.remove()
    return {name: np.concatenate(parts) for name, parts in per_example.items()}  # type: ignore[arg-type]


@torch.no_grad()
def sae_codes(sae: SparseAutoencoder, acts: np.ndarray, chunk: int = 1024) -> sp.csr_matrix:
    """`sae.codes` of every row, as a sparse [rows, d_sae] matrix (at most k non-zeros a row for TopK)."""
    parts = []
    for i in range(0, len(acts), chunk):
        dense = sae.codes(torch.from_numpy(acts[i : i + chunk])).float().cpu().numpy()
        parts.append(sp.csr_matrix(dense))
    return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, sae.n_latents), dtype=np.float32)


def feature_sets(acts: np.ndarray, sae: SparseAutoencoder) -> dict[str, Features]:
    codes = sae_codes(sae, acts)
    binary = codes.copy()
    binary.data = (binary.data > 0).astype(np.float32)
    binary.eliminate_zeros()
    return {"raw": acts, "sae": codes, "sae_binary": binary}

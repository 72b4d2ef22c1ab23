"""Evaluation of a trained SAE: FVU, L0 and dead fraction on held-out vectors; planted-feature recovery; the LM's
loss with the SAE spliced in at its layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.sae import SparseAutoencoder


@torch.no_grad()
def evaluate(sae: SparseAutoencoder, vectors: Tensor, batch_rows: int = 8192) -> dict[str, float]:
    """Mean-centred FVU over the whole set, mean L0 per vector, fraction of latents that never fire."""
    device = sae.W_enc.device
    sq_err = 0.0
    l0_sum = 0
    fired = torch.zeros(sae.n_latents, dtype=torch.bool, device=device)
    was_training = sae.training
    sae.eval()
    for start in range(0, len(vectors), batch_rows):
        x = vectors[start : start + batch_rows].to(device)
        vals, idx, _, _ = sae.encode(x, inference=True)
        recon = sae.decode(vals, idx)
        sq_err += float((recon.float() - x).pow(2).sum())
        active = vals > 0
        l0_sum += int(active.sum())
        fired[idx[active]] = True
    sae.train(was_training)
    total_var = float((vectors - vectors.mean(0)).pow(2).sum())
    return {
        "fvu": sq_err / max(total_var, 1e-12),
        "l0": l0_sum / len(vectors),
        "dead_fraction": 1.0 - float(fired.float().mean()),
    }


@torch.no_grad()
def feature_recovery(decoder_rows: Tensor, true_features: Tensor) -> float:
    """Mean over true features of the best cosine similarity with any decoder row."""
    dec = decoder_rows.float().cpu()
    dec = dec / dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
    true = true_features.float().cpu()
    true = true / true.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return float((true @ dec.T).amax(dim=1).mean())


def reconstruction_of(sae: SparseAutoencoder) -> Callable[[Tensor], Tensor]:
    """x -> the SAE's reconstruction of x (inference encode, fp32), in x's dtype."""

    def reconstruct(x: Tensor) -> Tensor:
        flat = x.reshape(-1, x.shape[-1]).float()
        vals, idx, _, _ = sae.encode(flat, inference=True)
        return sae.decode(vals, idx).float().reshape(x.shape).to(x.dtype)

    return reconstruct


@torch.no_grad()
def spliced_lm_loss(
    model: nn.Module,
    module: nn.Module,
    windows: Tensor,
    reconstruct: Callable[[Tensor], Tensor],
    skip_first: bool,
    batch_sequences: int = 8,
    max_logit_elements: int = 1 << 28,
) -> dict[str, float | None]:
    """The LM's next-token loss on `windows` [n, context] clean, with `module`'s output replaced by its
    reconstruction, and with it zeroed (the floor). `ce_loss_recovered` = (CE_zero - CE_sae) / (CE_zero - CE_clean)
    (SAELens's ce_loss_score, dictionary_learning's frac_recovered); `delta_lm_loss` = CE_sae - CE_clean (Gao et al.'s
    downstream loss); `kl_with_sae`: mean KL(clean || spliced) per predicted token. With `skip_first`, position 0 (never
    trained on) stays clean in both replacements."""
    start = 1 if skip_first else 0
    mode: dict[str, Callable[[Tensor], Tensor] | None] = {"replace": None}

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        replace = mode["replace"]
        if replace is None:
            return None
        hidden = output[0] if isinstance(output, tuple) else output
        patched = hidden.clone()
        patched[:, start:] = replace(hidden[:, start:])
        return (patched, *output[1:]) if isinstance(output, tuple) else patched

    sums = {"clean": 0.0, "sae": 0.0, "zero": 0.0, "kl": 0.0}
    tokens = 0
    was_training = model.training
    model.eval()
    handle = module.register_forward_hook(hook)

    def log_probs(ids: Tensor, replace: Callable[[Tensor], Tensor] | None) -> Tensor:
        mode["replace"] = replace
        logits = model(ids).logits[:, :-1].float()
        return F.log_softmax(logits.reshape(-1, logits.shape[-1]), dim=-1)

    try:
        # An LLM's vocabulary makes logits big (16 x 1024 x 128k fp32 = 8 GiB): few sequences at a time.
        vocab = int(getattr(getattr(model, "config", None), "vocab_size", 0) or 1)
        per_batch = max(1, min(batch_sequences, max_logit_elements // (windows.shape[1] * vocab)))
        for first in range(0, len(windows), per_batch):
            ids = windows[first : first + per_batch]
            targets = ids[:, 1:].reshape(-1)
            clean = log_probs(ids, None)
            sums["clean"] += float(F.nll_loss(clean, targets, reduction="sum"))
            spliced = log_probs(ids, reconstruct)
            sums["sae"] += float(F.nll_loss(spliced, targets, reduction="sum"))
            sums["kl"] += float(F.kl_div(spliced, clean, log_target=True, reduction="sum"))
            del clean, spliced
            sums["zero"] += float(F.nll_loss(log_probs(ids, torch.zeros_like), targets, reduction="sum"))
            tokens += targets.numel()
    finally:
        handle.remove()
        model.train(was_training)
    clean, sae, zero = (sums[k] / tokens for k in ("clean", "sae", "zero"))
    return {
        "ce_loss_clean": clean,
        "ce_loss_with_sae": sae,
        "ce_loss_zero_ablation": zero,
        "ce_loss_recovered": (zero - sae) / (zero - clean) if zero != clean else None,
        "delta_lm_loss": sae - clean,
        "kl_with_sae": sums["kl"] / tokens,
    }

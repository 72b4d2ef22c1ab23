"""Evaluation of a trained SAE: FVU, L0 and dead fraction on held-out vectors; planted-feature recovery."""

from __future__ import annotations

import torch
from torch import Tensor

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
        x = vectors[start:start + batch_rows].to(device)
        vals, idx, _, _ = sae.encode(x, inference=True)
        recon = sae.decode(vals, idx)
        sq_err += float((recon.float() - x).pow(2).sum())
        active = vals > 0
        l0_sum += int(active.sum())
        fired[idx[active]] = True
    sae.train(was_training)
    total_var = float((vectors - vectors.mean(0)).pow(2).sum())
    return {"fvu": sq_err / max(total_var, 1e-12), "l0": l0_sum / len(vectors),
            "dead_fraction": 1.0 - float(fired.float().mean())}


@torch.no_grad()
def feature_recovery(decoder_rows: Tensor, true_features: Tensor) -> float:
    """Mean over true features of the best cosine similarity with any decoder row."""
    dec = decoder_rows.float().cpu()
    dec = dec / dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
    true = true_features.float().cpu()
    true = true / true.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return float((true @ dec.T).amax(dim=1).mean())

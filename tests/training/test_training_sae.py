"""The SAE module: sparse and dense paths agree with a plain autograd reference; decoder constraint; BatchTopK."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.sae import ActiveLatents, SparseAutoencoder, exact_topk


def _reference_loss(sae: SparseAutoencoder, x: torch.Tensor, dead: torch.Tensor, k_aux: int) -> torch.Tensor:
    pre = F.linear(x - sae.b_dec, sae.W_enc, sae.b_enc)
    vals, idx = pre.topk(sae.k, dim=1)
    recon = torch.zeros_like(pre).scatter(1, idx, vals.relu()) @ sae.W_dec + sae.b_dec
    fvu = (recon - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    residual = (x - recon).detach()
    aux_vals, aux_idx = pre.masked_fill(~dead, -1e9).topk(k_aux, dim=1)
    aux = torch.zeros_like(pre).scatter(1, aux_idx, aux_vals.relu()) @ sae.W_dec
    auxk = (aux - residual).pow(2).sum() / (residual - residual.mean(0)).pow(2).sum()
    return fvu + auxk / 32


def test_exact_topk_matches_torch_topk() -> None:
    pre = torch.randn(300, 2048, generator=torch.Generator().manual_seed(3))
    vals, idx = exact_topk(pre, 32)
    ref_vals, _ = pre.topk(32, dim=1)
    assert torch.equal(vals.sort(dim=1).values, ref_vals.sort(dim=1).values)
    assert torch.equal(pre.gather(1, idx), vals)


def test_sparse_products_match_dense_reference_on_both_backends() -> None:
    """The CSR products (CPU default) and the embedding_bag ones (CUDA default) both equal the dense computation."""
    gen = torch.Generator().manual_seed(4)
    batch, n_latents, k, width = 96, 512, 12, 40
    idx = torch.rand(batch, n_latents, generator=gen).topk(k, dim=1).indices
    coef, dense = torch.randn(batch, k, generator=gen), torch.randn(batch, width, generator=gen)
    weight = torch.randn(n_latents, width, generator=gen)
    z = torch.zeros(batch, n_latents).scatter(1, idx, coef)
    for csr in (True, False):
        active = ActiveLatents(n_latents, idx, csr=csr)
        torch.testing.assert_close(active.t_matmul(coef, dense), z.t() @ dense, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            active.sampled_dots(weight, dense), (dense @ weight.t()).gather(1, idx), atol=1e-5, rtol=1e-5
        )


def test_sparse_and_dense_paths_match_reference_gradients() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(128, 48, generator=gen) + 0.5
    dead = torch.zeros(384, dtype=torch.bool)
    dead[::3] = True
    grads = {}
    for impl in ("sparse", "dense", "reference"):
        sae = SparseAutoencoder(
            48,
            384,
            6,
            decode_impl="sparse" if impl == "reference" else impl,
            generator=torch.Generator().manual_seed(1),
        )
        with torch.no_grad():
            sae.b_dec.copy_(x.mean(0))
            sae.b_enc.copy_(torch.randn(384, generator=torch.Generator().manual_seed(2)) * 0.1)
        if impl == "reference":
            loss = _reference_loss(sae, x, dead, 6)
        else:
            loss = sae(x, dead_mask=dead, k_aux=6, auxk_alpha=1 / 32).loss
        loss.backward()
        grads[impl] = (loss.item(), {n: p.grad.clone() for n, p in sae.named_parameters()})
    ref_loss, ref = grads["reference"]
    for impl in ("sparse", "dense"):
        loss, got = grads[impl]
        assert abs(loss - ref_loss) < 1e-5
        for name, grad in ref.items():
            assert grad.abs().max() > 0, name
            torch.testing.assert_close(got[name], grad, atol=1e-6, rtol=1e-4)


def test_decoder_gradient_projection_keeps_rows_unit_norm() -> None:
    sae = SparseAutoencoder(16, 64, 4, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
    x = torch.randn(64, 16)
    for _ in range(5):
        sae(x).loss.backward()
        sae.project_decoder_grad()
        radial = (sae.W_dec.grad * sae.W_dec.data).sum(dim=1)
        assert radial.abs().max() < 1e-6
        opt.step()
        opt.zero_grad()
        sae.normalize_decoder()
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(64))


def test_batchtopk_keeps_k_per_row_on_average() -> None:
    sae = SparseAutoencoder(32, 256, 8, architecture="batchtopk", generator=torch.Generator().manual_seed(0))
    x = torch.randn(512, 32, generator=torch.Generator().manual_seed(1))
    out = sae(x)
    per_row = (out.vals > 0).sum(dim=1).float()
    assert abs(per_row.mean().item() - 8) < 0.05
    assert per_row.max() > per_row.min()  # the budget is shared across the batch, not fixed per row
    assert sae.threshold > 0
    out.loss.backward()
    assert sae.W_enc.grad is not None
    assert sae.W_enc.grad.abs().sum() > 0

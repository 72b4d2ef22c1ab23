"""TopK / BatchTopK sparse autoencoder with a sparse (k active latents) and a dense compute path.

Recipe (Gao et al. 2024, as in EleutherAI/sparsify and openai/sparse_autoencoder): z = TopK(W_enc (x - b_dec) + b_enc),
x_hat = W_dec^T z + b_dec, decoder rows kept at unit norm with the radial gradient component removed, encoder
initialised as the decoder, b_dec from the geometric median of data, FVU loss plus AuxK on dead latents.

The sparse path never builds a [batch, n_latents] tensor after the encoder matmul. Both weight gradients are
Z^T @ dense with Z the k-sparse [batch, n_latents] codes, and the gradient of the codes is W_dec sampled at Z's
pattern. On CPU these run as MKL sparse (CSR) products over one latent-sorted copy of the pattern that the encoder and
the decoder share; on CUDA through `embedding_bag` and its backward.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training import cpu_topk


def exact_topk(pre: Tensor, k: int, block: int = 8) -> tuple[Tensor, Tensor]:
    """Row-wise top-k, exact, unordered. On CPU the C kernel of `cpu_topk` when it could be built; otherwise this,
    ~1.5x faster than `torch.topk` on wide rows on CPU.

    Latent j belongs to block j % n_blocks. The true top-k of a row lie in the k blocks with the largest maxima (any
    element outside them is beaten by k block maxima), so we take top-k over block maxima and run top-k on the
    members of those blocks only. Strided blocks make the block maxima an elementwise max of `block` contiguous
    slices, which vectorises; contiguous blocks would reduce over a stride-1 axis of length `block`.
    """
    if cpu_topk.supports(pre, k):
        return cpu_topk.topk(pre, k)
    rows, width = pre.shape
    if pre.is_cuda or width % block or width < 2 * k * block:
        return pre.topk(k, dim=1, sorted=False)
    n_blocks = width // block
    best_blocks = pre.view(rows, block, n_blocks).amax(dim=1).topk(k, dim=1, sorted=False).indices  # [rows, k]
    members = (best_blocks.unsqueeze(2) + torch.arange(0, width, n_blocks, device=pre.device)).view(rows, k * block)
    vals, pos = pre.gather(1, members).topk(k, dim=1, sorted=False)
    return vals, members.gather(1, pos)


class ActiveLatents:
    """The active latents of each row ([batch, k] indices into n_latents): the pattern of the sparse codes Z.

    On CPU the products with Z^T want the pattern sorted by latent (CSR of Z^T); it is built on first use and then
    shared by the decoder's and the encoder's backward. `csr` picks the CSR products (default: on CPU) or the
    `embedding_bag` ones (default on CUDA)."""

    def __init__(self, n_latents: int, idx: Tensor | None = None, csr: bool | None = None) -> None:
        self.n_latents = n_latents
        self.idx = idx
        self.csr = csr
        self._by_latent: tuple[Tensor, Tensor, Tensor] | None = None

    def _latent_major(self) -> tuple[Tensor, Tensor, Tensor]:
        if self._by_latent is None:
            assert self.idx is not None
            flat = self.idx.reshape(-1)
            order = flat.argsort(stable=True)  # stable: batch indices ascend within each latent, as CSR wants
            crow = torch.zeros(self.n_latents + 1, dtype=torch.long, device=flat.device)
            torch.cumsum(torch.bincount(flat, minlength=self.n_latents), 0, out=crow[1:])
            self._by_latent = (order, crow, order // self.idx.shape[1])
        return self._by_latent

    def _z_t(self, coef: Tensor | None) -> tuple[Tensor, Tensor]:
        """Z^T as a CSR [n_latents, batch] with values coef (or zeros), and the order of its values."""
        order, crow, rows = self._latent_major()
        values = coef.reshape(-1)[order] if coef is not None else torch.zeros(len(order), device=order.device)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
            z_t = torch.sparse_csr_tensor(
                crow,
                rows,
                values,
                (self.n_latents, self.idx.shape[0]),  # type: ignore
                check_invariants=False,
            )
        return z_t, order

    def _use_csr(self, dense: Tensor) -> bool:
        return self.csr if self.csr is not None else dense.device.type == "cpu"

    def t_matmul(self, coef: Tensor, dense: Tensor) -> Tensor:
        """Z^T @ dense with Z[b, idx[b, j]] = coef[b, j]: row l sums coef * dense[b] over the rows where l is active.

        The weight gradient of either side of the SAE; never materialises [batch * k, d] outer products."""
        assert self.idx is not None
        if not self._use_csr(dense):
            return _embedding_bag_weight_grad(self.idx, coef, dense, self.n_latents)
        z_t, _ = self._z_t(coef.to(dense.dtype))
        return z_t @ dense

    def sampled_dots(self, weight: Tensor, dense: Tensor) -> Tensor:
        """[batch, k]: dense[b] . weight[idx[b, j]], i.e. (dense @ weight^T) read only at the active entries."""
        assert self.idx is not None
        if not self._use_csr(dense):
            coef = torch.ones(self.idx.shape, dtype=dense.dtype, device=dense.device, requires_grad=True)
            with torch.enable_grad():
                bags = F.embedding_bag(self.idx, weight.detach(), per_sample_weights=coef, mode="sum")
                (grad,) = torch.autograd.grad(bags, coef, dense)
            return grad
        z_t, order = self._z_t(None)
        dots = torch.sparse.sampled_addmm(z_t, weight.to(dense.dtype), dense.t(), beta=0.0).values()
        out = torch.empty_like(dots)
        out[order] = dots
        return out.view(self.idx.shape)


def _embedding_bag_weight_grad(idx: Tensor, coef: Tensor, dense: Tensor, n_rows: int) -> Tensor:
    """Z^T @ dense as the weight gradient of `embedding_bag(idx, W, per_sample_weights=coef)` for output grad dense."""
    weight = torch.zeros(n_rows, dense.shape[1], dtype=dense.dtype, device=dense.device, requires_grad=True)
    with torch.enable_grad():
        bags = F.embedding_bag(idx, weight, per_sample_weights=coef.to(dense.dtype), mode="sum")
        (grad,) = torch.autograd.grad(bags, weight, dense)
    return grad


class SparseEncode(torch.autograd.Function):
    """Top-k encoder with an optional second top-k over dead latents (AuxK); sparse backward.

    Fills `active` (and `aux_active`) with the chosen latents so that the decoder's backward and this one share the
    latent-sorted pattern."""

    @staticmethod
    def forward(
        ctx,
        x: Tensor,
        b_dec: Tensor,
        w_enc: Tensor,
        b_enc: Tensor,
        k: int,
        batch_k: int | None,
        dead_cols: Tensor | None,
        k_aux: int,
        active: ActiveLatents,
        aux_active: ActiveLatents,
    ) -> tuple[Tensor, Tensor]:
        x_c = x - b_dec
        pre = F.linear(x_c, w_enc, b_enc)
        vals, idx = exact_topk(pre, k)
        if batch_k is not None:
            threshold = vals.reshape(-1).topk(batch_k, sorted=False).values.min()
            vals = torch.where(vals >= threshold, vals, torch.zeros_like(vals))
        vals = vals.clamp_min(0).float()  # under bf16 autocast only the encoder matmul runs in bf16
        if dead_cols is not None and dead_cols.numel() > 0 and k_aux > 0:
            aux_vals, aux_pos = exact_topk(pre[:, dead_cols], min(k_aux, dead_cols.numel()))
            aux_idx = dead_cols[aux_pos]
            aux_vals = aux_vals.clamp_min(0).float()
        else:
            aux_vals = pre.new_zeros(pre.shape[0], 0, dtype=torch.float32)
            aux_idx = torch.zeros(pre.shape[0], 0, dtype=torch.long, device=pre.device)
        active.idx, aux_active.idx = idx, aux_idx
        ctx.save_for_backward(x_c, w_enc, vals, aux_vals)
        ctx.active, ctx.aux_active = active, aux_active
        return vals, aux_vals

    @staticmethod
    def backward(ctx, g_vals: Tensor, g_aux: Tensor):  # type: ignore[override]
        x_c, w_enc, vals, aux_vals = ctx.saved_tensors
        x_c = x_c.float()
        parts = [(ctx.active, torch.where(vals > 0, g_vals, torch.zeros_like(g_vals)))]
        if aux_vals.shape[1]:
            parts.append((ctx.aux_active, torch.where(aux_vals > 0, g_aux, torch.zeros_like(g_aux))))
        n_latents = w_enc.shape[0]
        grad_b_enc = torch.zeros(n_latents, dtype=g_vals.dtype, device=g_vals.device)
        grad_w_enc = None
        for active, g in parts:
            grad_b_enc.index_add_(0, active.idx.reshape(-1), g.reshape(-1))
            if ctx.needs_input_grad[2]:
                part = active.t_matmul(g, x_c)
                grad_w_enc = part if grad_w_enc is None else grad_w_enc + part
        grad_b_dec = -(grad_b_enc @ w_enc.float()) if ctx.needs_input_grad[1] else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = sum(
                F.embedding_bag(active.idx, w_enc, per_sample_weights=g.to(w_enc.dtype), mode="sum")
                for active, g in parts
            )
        return grad_x, grad_b_dec, grad_w_enc, grad_b_enc, None, None, None, None, None, None


class SparseDecode(torch.autograd.Function):
    """x_hat = Z @ W_dec over the k active latents per row (an `embedding_bag`), with sparse products backward."""

    @staticmethod
    def forward(ctx, vals: Tensor, w_dec: Tensor, active: ActiveLatents) -> Tensor:
        ctx.save_for_backward(vals, w_dec)
        ctx.active = active
        return F.embedding_bag(active.idx, w_dec, per_sample_weights=vals.to(w_dec.dtype), mode="sum")

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        vals, w_dec = ctx.saved_tensors
        active: ActiveLatents = ctx.active
        grad_vals = active.sampled_dots(w_dec, grad_out).to(vals.dtype) if ctx.needs_input_grad[0] else None
        grad_w = active.t_matmul(vals, grad_out).to(w_dec.dtype) if ctx.needs_input_grad[1] else None
        return grad_vals, grad_w, None


@dataclass
class ForwardOutput:
    recon: Tensor
    vals: Tensor  # [batch, k] activations of the selected latents (0 where BatchTopK dropped one)
    idx: Tensor  # [batch, k] their latent indices
    fvu: Tensor
    auxk: Tensor
    loss: Tensor


def fvu_of(x: Tensor, recon: Tensor) -> Tensor:
    """Fraction of variance unexplained, mean-centred over the batch (sparsify / SAELens definition)."""
    total = (x - x.mean(0)).pow(2).sum()
    return (recon - x).pow(2).sum() / total.clamp_min(1e-12)


class SparseAutoencoder(nn.Module):
    def __init__(
        self,
        d_in: int,
        n_latents: int,
        k: int,
        architecture: str = "topk",
        batchtopk_candidates: int = 4,
        decode_impl: str = "sparse",
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.d_in, self.n_latents, self.k = d_in, n_latents, k
        self.architecture = architecture
        self.batchtopk_candidates = batchtopk_candidates
        self.decode_impl = decode_impl
        w_dec = torch.randn(n_latents, d_in, generator=generator, device="cpu")
        w_dec /= w_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w_dec.to(device))
        self.W_enc = nn.Parameter(w_dec.clone().to(device))
        self.b_enc = nn.Parameter(torch.zeros(n_latents, device=device))
        self.b_dec = nn.Parameter(torch.zeros(d_in, device=device))
        # BatchTopK inference threshold (EMA of the smallest kept activation); unused by plain TopK.
        self.register_buffer("threshold", torch.zeros((), device=device))

    # --- encode / decode ---
    def _row_k(self) -> int:
        if self.architecture == "batchtopk":
            return min(self.n_latents, self.k * self.batchtopk_candidates)
        return self.k

    def _encode(
        self, x: Tensor, dead_cols: Tensor | None, k_aux: int, inference: bool
    ) -> tuple[Tensor, ActiveLatents, Tensor, ActiveLatents]:
        active, aux_active = ActiveLatents(self.n_latents), ActiveLatents(self.n_latents)
        if self.architecture == "batchtopk" and inference and float(self.threshold) > 0:
            return (*self._threshold_encode(x, active), x.new_zeros(x.shape[0], 0), aux_active)
        batch_k = self.k * x.shape[0] if self.architecture == "batchtopk" and not inference else None
        vals, aux_vals = SparseEncode.apply(
            x,
            self.b_dec,
            self.W_enc,
            self.b_enc,
            self._row_k() if batch_k is not None else self.k,
            batch_k,
            dead_cols,
            k_aux,
            active,
            aux_active,
        )
        return vals, active, aux_vals, aux_active

    @torch.no_grad()
    def _threshold_encode(self, x: Tensor, active: ActiveLatents) -> tuple[Tensor, ActiveLatents]:
        """BatchTopK at inference: every latent whose pre-activation is above the threshold keeps it (a JumpReLU
        with one threshold, as SAELens runs an exported BatchTopK SAE); the row width is the largest count."""
        pre = F.linear(x - self.b_dec, self.W_enc, self.b_enc)
        above = pre > self.threshold
        width = max(1, int(above.sum(dim=1).max()))
        vals, idx = exact_topk(pre, width)
        active.idx = idx
        return torch.where(vals > self.threshold, vals, torch.zeros_like(vals)).float(), active

    def encode(
        self, x: Tensor, dead_cols: Tensor | None = None, k_aux: int = 0, inference: bool = False
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(vals, idx) of the active latents per row, then the same for the AuxK latents (empty without dead_cols)."""
        vals, active, aux_vals, aux_active = self._encode(x, dead_cols, k_aux, inference)
        return vals, active.idx, aux_vals, aux_active.idx  # type: ignore[return-value]

    def decode(self, vals: Tensor, idx: Tensor | ActiveLatents, with_bias: bool = True) -> Tensor:
        active = idx if isinstance(idx, ActiveLatents) else ActiveLatents(self.n_latents, idx)
        if self.decode_impl == "dense":
            out = self._dense_codes(vals, active.idx) @ self.W_dec  # type: ignore[arg-type]
        else:
            out = SparseDecode.apply(vals, self.W_dec, active)
        return out + self.b_dec if with_bias else out

    def forward(
        self,
        x: Tensor,
        dead_mask: Tensor | None = None,
        k_aux: int = 0,
        auxk_alpha: float = 0.0,
        inference: bool = False,
    ) -> ForwardOutput:
        dead_cols = None
        if dead_mask is not None and auxk_alpha > 0 and k_aux > 0:
            dead_cols = dead_mask.nonzero().squeeze(1)
        vals, active, aux_vals, aux_active = self._encode(x, dead_cols, k_aux, inference)
        recon = self.decode(vals, active)
        fvu = fvu_of(x, recon)
        auxk = recon.new_zeros(())
        if aux_vals.shape[1]:
            residual = (x - recon).detach()
            aux_recon = self.decode(aux_vals, aux_active, with_bias=False)
            auxk = fvu_of(residual, aux_recon)
        loss = fvu + auxk_alpha * auxk
        if self.architecture == "batchtopk" and self.training and not inference:
            kept = vals[vals > 0]
            if kept.numel():
                with torch.no_grad():
                    self.threshold.lerp_(kept.min().to(self.threshold.dtype), 0.01)
        return ForwardOutput(
            recon=recon,
            vals=vals,
            idx=active.idx,
            fvu=fvu,
            auxk=auxk,  # type: ignore[arg-type]
            loss=loss,
        )

    # --- decoder constraint ---
    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove the gradient component parallel to each (unit-norm) decoder row."""
        if self.W_dec.grad is None:
            return
        w, g = self.W_dec.data, self.W_dec.grad
        g -= (g * w).sum(dim=1, keepdim=True) * w

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec.data /= self.W_dec.data.norm(dim=1, keepdim=True).clamp_min(1e-8)

    @torch.no_grad()
    def init_b_dec(self, sample: Tensor, method: str) -> None:
        if method == "zero":
            self.b_dec.zero_()
        elif method == "mean":
            self.b_dec.copy_(sample.mean(0))
        else:
            self.b_dec.copy_(geometric_median(sample))

    @torch.no_grad()
    def codes(self, x: Tensor) -> Tensor:
        """Dense latent activations [n, n_latents] at inference (BatchTopK: above its threshold), e.g. as probe
        features."""
        vals, idx, _, _ = self.encode(x.to(self.W_enc.device, torch.float32), inference=True)
        return self._dense_codes(vals, idx)

    def _dense_codes(self, vals: Tensor, idx: Tensor) -> Tensor:
        return torch.zeros(vals.shape[0], self.n_latents, dtype=vals.dtype, device=vals.device).scatter(1, idx, vals)

    def export_state(self) -> dict[str, Tensor]:
        """Weights in the published layout: W_enc [d_sae, d_in], b_enc, W_dec [d_sae, d_in], b_dec (fp32)."""
        out = {
            name: getattr(self, name).detach().float().cpu().contiguous()
            for name in ("W_enc", "b_enc", "W_dec", "b_dec")
        }
        if self.architecture == "batchtopk":
            out["threshold"] = self.threshold.detach().float().cpu().reshape(1)
        return out


@torch.no_grad()
def geometric_median(points: Tensor, iters: int = 64, eps: float = 1e-6) -> Tensor:
    """Weiszfeld's algorithm, started from the mean."""
    points = points.float()
    median = points.mean(0)
    for _ in range(iters):
        weights = 1.0 / (points - median).norm(dim=1).clamp_min(eps)
        new = (weights[:, None] * points).sum(0) / weights.sum()
        if (new - median).norm() < eps * median.norm().clamp_min(1.0):
            return new
        median = new
    return median

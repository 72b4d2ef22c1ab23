"""One SAE of a run: its weights, optimizer, dead-latent counters, plateau state and files. A run trains one (its
out_dir holds its files) or, with `saes`, several on one data stream (each in out_dir/<name>)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from training.config import TrainConfig
from training.data import PURPOSE_INIT, make_generator
from training.outputs import RunOutputs
from training.sae import SparseAutoencoder


def lr_factor(step: int, total_steps: int, warmup: int, decay_start: float) -> float:
    """Linear warm-up, constant, then linear decay to zero over the last (1 - decay_start) of training."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    decay_from = int(total_steps * decay_start)
    if step >= decay_from and total_steps > decay_from:
        return max(0.0, (total_steps - step) / (total_steps - decay_from))
    return 1.0


class Member:
    """SAE `name` ("" for a run's only SAE), reading columns [column * d_in, (column + 1) * d_in) of each batch."""

    def __init__(
        self, name: str, cfg: TrainConfig, column: int, device: torch.device, outputs: RunOutputs | None
    ) -> None:
        assert cfg.d_in is not None
        self.name, self.cfg, self.column, self.outputs = name, cfg, column, outputs
        _, init_seed, _ = cfg.seeds()
        self.sae = SparseAutoencoder(
            cfg.d_in,
            cfg.resolved_n_latents(),
            cfg.k,
            cfg.architecture,
            cfg.batchtopk_candidates,
            "sparse" if cfg.decode_impl == "auto" else cfg.decode_impl,
            generator=make_generator(init_seed, PURPOSE_INIT),
            device=device,
        )
        fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
        self.optimizer = torch.optim.Adam(
            self.sae.parameters(),
            lr=cfg.resolved_lr(),
            betas=(cfg.adam_beta1, cfg.adam_beta2),
            eps=cfg.adam_eps,
            **fused,
        )
        self.vectors_since_fired = torch.zeros(self.sae.n_latents, dtype=torch.long, device=device)
        self.best_fvu = math.inf
        self.intervals_without_gain = 0
        self.init_recovery: float | None = None
        self.model: torch.nn.Module = self.sae  # or its DDP wrapper (set by the trainer)

    @property
    def out_dir(self) -> Path:
        return Path(self.cfg.out_dir)

    def columns(self, x: torch.Tensor) -> torch.Tensor:
        d = self.sae.d_in
        if x.shape[1] == d:
            return x
        return x[:, self.column * d : (self.column + 1) * d].contiguous()

    def set_lr(self, step: int, total_steps: int) -> float:
        lr = self.cfg.resolved_lr() * lr_factor(step, total_steps, self.cfg.resolved_warmup(), self.cfg.decay_start)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def note_fired(self, vals: torch.Tensor, idx: torch.Tensor, batch_size: int, distributed: bool) -> None:
        fired = torch.zeros(self.sae.n_latents, device=vals.device)
        fired.index_fill_(0, idx[vals > 0], 1.0)
        if distributed:
            dist.all_reduce(fired, op=dist.ReduceOp.MAX)
        self.vectors_since_fired += batch_size
        self.vectors_since_fired[fired > 0] = 0

    def dead_mask(self) -> torch.Tensor:
        return self.vectors_since_fired >= self.cfg.resolved_dead_window()

    def plateaued(self, fvu: float) -> bool:
        """One more log interval seen: has it gone `plateau_patience` intervals without a relative FVU gain?"""
        if not self.cfg.plateau_patience:
            return False
        if fvu < self.best_fvu * (1 - self.cfg.plateau_min_delta):
            self.best_fvu, self.intervals_without_gain = fvu, 0
            return False
        self.intervals_without_gain += 1
        return self.intervals_without_gain >= self.cfg.plateau_patience

    def state(self) -> dict[str, Any]:
        return {
            "model": self.sae.state_dict(),
            "decode_impl": self.sae.decode_impl,
            "optimizer": self.optimizer.state_dict(),
            "vectors_since_fired": self.vectors_since_fired.cpu(),
            "best_fvu": self.best_fvu,
            "intervals_without_gain": self.intervals_without_gain,
            "init_recovery": self.init_recovery,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.sae.load_state_dict(state["model"])
        self.sae.decode_impl = state["decode_impl"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.vectors_since_fired = state["vectors_since_fired"].to(self.vectors_since_fired.device)
        self.best_fvu = state["best_fvu"]
        self.intervals_without_gain = state["intervals_without_gain"]
        self.init_recovery = state.get("init_recovery")

    def sae_config(self, step: int, activations: dict[str, Any] | None = None) -> dict[str, Any]:
        """sae_config.json; `activations`: where a shards run's activations came from (an activation cache's
        manifest: model, layer, context), so that the export names the model and hook even then."""
        cfg = self.cfg
        out = {
            "d_in": cfg.d_in,
            "d_sae": self.sae.n_latents,
            "k": cfg.k,
            "architecture": cfg.architecture,
            "activation": "topk" if cfg.architecture == "topk" else "batchtopk (use threshold at inference)",
            "W_dec_layout": "[d_sae, d_in], unit-norm rows",
            "encode": "z = topk(relu(W_enc @ (x - b_dec) + b_enc))",
            "decode": "x_hat = z @ W_dec + b_dec",
            "hf_model": cfg.hf_model,
            "hf_layer": cfg.hf_layer,
            "steps": step,
            "train_config": cfg.to_dict(),
        }
        if activations is not None:
            keys = ("model", "hf_model_config", "layer", "context", "skip_first_token", "dtype", "token_count")
            out["activations"] = {key: activations.get(key) for key in keys}
            out["hf_model"] = out["hf_model"] or activations.get("model")
            out["hf_layer"] = out["hf_layer"] or activations.get("layer")
        return out

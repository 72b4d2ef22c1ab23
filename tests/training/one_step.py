"""One optimizer step of the real trainer on five fixed rows (used by test_training_elastic.py).

Alone it takes all five rows; under torchrun each rank takes its share (`rank_rows`: 3 and 2 on two ranks). Rank 0
saves the gradients Adam stepped with and the parameters after the step to the path given."""

from __future__ import annotations

import sys

import torch

from training.config import build_config
from training.data import rank_rows
from training.trainer import Trainer

ROWS = 5


def main(out_path: str, out_dir: str) -> None:
    cfg = build_config(
        None,
        dict(
            data_source="synthetic",
            d_in=16,
            expansion_factor=4,
            k=4,
            synthetic_features=64,
            synthetic_pool=512,
            shuffle_buffer=512,
            batch_size=ROWS,
            total_vectors=ROWS * 10,
            decode_impl="sparse",
            threads=1,
            out_dir=out_dir,
            plot=False,
        ),
    )
    trainer = Trainer(cfg)
    rows = torch.randn(ROWS, 16, generator=torch.Generator().manual_seed(0)) + 1.0
    world, rank = trainer.dist.world, trainer.dist.rank
    start = sum(rank_rows(ROWS, world, r) for r in range(rank))
    x = rows[start : start + rank_rows(ROWS, world, rank)]
    grads: dict[str, torch.Tensor] = {}

    def keep_grads(*_: object) -> None:
        grads.update({name: p.grad.clone() for name, p in trainer.sae.named_parameters() if p.grad is not None})

    trainer.optimizer.register_step_pre_hook(keep_grads)
    member = trainer.members[0]
    member.set_lr(trainer.step, trainer.total_steps)
    member.model = trainer.wrapped_model(member.sae)
    trainer._train_step(member, x)
    if trainer.dist.is_main:
        torch.save({"grads": grads, "params": dict(trainer.sae.named_parameters())}, out_path)
    trainer.dist.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""Benchmark: our TopK SAE trainer vs SAELens's TopK SAE on the same planted-feature data, one process.

    python -m training.bench                       # 1M and 4M vectors, SAELens at lr 3e-3 (sae-notes §5)
    python -m training.bench --sizes 64k --saelens-lrs 3e-3 --threads 2   # smoke check
    python -m training.bench --saelens-lrs 1e-3,3e-3,1e-2                 # sweep SAELens at the smallest size
    python -m training.bench --device cuda --shape 4096x32768k64           # a shape from cached activations
    python -m training.bench --multi                                       # 4 SAEs on one LM forward vs 4 runs

(--shape: training/bench_shapes.py; --multi: training/bench_multi.py.) Each run of ours is also loaded with
`sae_lens.SAE.load_from_disk` from its SAELens export, and its codes and reconstruction compared with ours.

Shape: d_in 256, 8x (2048 latents), k 32, batch 4096, fp32 on CPU. Ours runs at its defaults. SAELens
(`sae-lens`, requirements-bench.txt; a separate venv) runs its own `TopKTrainingSAE` + `SAETrainer` fed by a plain
iterator over the same vectors. Both are evaluated on the same 65,536 held-out vectors: FVU (mean-centred), L0, dead
fraction (latents that never fire on the eval set), planted-feature recovery (mean over true features of the best
cosine with a decoder row). Throughput is steady state (first 10% of steps excluded).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from training.config import build_config
from training.data import PURPOSE_EVAL, PURPOSE_SHUFFLE, SyntheticSource, build_source, make_generator
from training.evaluate import feature_recovery
from training.trainer import THROUGHPUT_WARMUP_FRACTION, Trainer, tune_cpu_allocator

SHAPE = dict(d_in=256, expansion_factor=8, k=32, batch_size=4096)
DATA_SEED = 0
SAELENS_INIT_SEED = 1000


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 2**10, "m": 2**20}.get(text[-1], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def matmul_peak_gflops(n: int = 4096, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def sparse_step_flops(d_in: int, n_latents: int, k: int) -> int:
    """FLOPs per vector of a sparse TopK step (sae-notes §3.1): dense encoder forward + k-sparse rest."""
    return 2 * d_in * n_latents + 10 * k * d_in


def dense_step_flops(d_in: int, n_latents: int) -> int:
    return 12 * d_in * n_latents


# --- ours ---
def run_ours(total_vectors: int, threads: int, work_dir: Path) -> dict[str, Any]:
    out_dir = work_dir / f"ours_{total_vectors}"
    shutil.rmtree(out_dir, ignore_errors=True)
    cfg = build_config(
        None,
        dict(
            SHAPE,
            total_vectors=total_vectors,
            threads=threads,
            out_dir=str(out_dir),
            log_every=32,
            checkpoint_every=10**9,
            plot=False,
            seed=DATA_SEED,
        ),
    )
    trainer = Trainer(cfg)
    trainer._log = lambda line: None  # keep the benchmark's own table readable
    summary = trainer.run().summary
    return {
        "impl": "ours",
        "saelens_load_max_abs_diff": saelens_round_trip(out_dir),
        "lr": summary["lr"],
        "vectors": summary["vectors"],
        "vectors_per_second": summary["vectors_per_second"],
        "fvu": summary["fvu"],
        "l0": summary["l0"],
        "dead_fraction": summary["dead_fraction"],
        "recovery": summary["recovery"],
        "recovery_at_init": summary["recovery_at_init"],
        "decode_impl": summary["decode_impl"],
    }


def saelens_round_trip(out_dir: Path) -> float | None:
    """SAELens loads our export (`SAE.load_from_disk`): the largest difference of codes and reconstruction, which must
    be <= 1e-5; None (said out loud) where sae-lens is not installed."""
    if importlib.util.find_spec("sae_lens") is None:
        print("NO SAE-LENS here: the SAELens round trip of our export was not checked", flush=True)
        return None
    from training.saelens_check import compare

    check = compare(out_dir)
    worst = max(check["codes_max_abs_diff"], check["recon_max_abs_diff"])
    if worst > 1e-5:
        raise AssertionError(f"SAELens computes another SAE from our export: {check}")
    return worst


# --- SAELens ---
def _epochs(pool: torch.Tensor, batch: int, seed: int) -> Iterator[torch.Tensor]:
    epoch = 0
    while True:
        order = torch.randperm(len(pool), generator=make_generator(seed, PURPOSE_SHUFFLE, epoch))
        for start in range(0, len(pool) - batch + 1, batch):
            yield pool[order[start : start + batch]]
        epoch += 1


class _TimedIterator:
    """Records when each batch is requested, for a steady-state rate that excludes the warm-up steps."""

    def __init__(self, inner: Iterator[torch.Tensor]) -> None:
        self.inner, self.stamps = inner, []

    def __iter__(self) -> _TimedIterator:
        return self

    def __next__(self) -> torch.Tensor:
        self.stamps.append(time.perf_counter())
        return next(self.inner)


@torch.no_grad()
def _eval_saelens(sae: Any, vectors: torch.Tensor, dictionary: torch.Tensor) -> dict[str, float]:
    sq_err, l0, fired = 0.0, 0, torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    for start in range(0, len(vectors), 8192):
        x = vectors[start : start + 8192]
        acts = sae.encode(x)
        sq_err += float((sae.decode(acts) - x).pow(2).sum())
        active = acts > 0
        l0 += int(active.sum())
        fired |= active.any(dim=0)
    total = float((vectors - vectors.mean(0)).pow(2).sum())
    return {
        "fvu": sq_err / total,
        "l0": l0 / len(vectors),
        "dead_fraction": 1 - float(fired.float().mean()),
        "recovery": feature_recovery(sae.W_dec.detach(), dictionary),
    }


def run_saelens(total_vectors: int, lr: float, source: SyntheticSource, eval_vectors: torch.Tensor) -> dict[str, Any]:
    from sae_lens.config import LoggingConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer, SAETrainerConfig

    d_in, n_latents = SHAPE["d_in"], SHAPE["d_in"] * SHAPE["expansion_factor"]
    torch.manual_seed(SAELENS_INIT_SEED)
    sae = TopKTrainingSAE(
        TopKTrainingSAEConfig(d_in=d_in, d_sae=n_latents, k=SHAPE["k"], dtype="float32", device="cpu")
    )
    init_recovery = feature_recovery(sae.W_dec.detach(), source.planted.dictionary)
    batches = _TimedIterator(_epochs(source.pool, SHAPE["batch_size"], DATA_SEED + 1))
    trainer_cfg = SAETrainerConfig(
        total_training_samples=total_vectors,
        train_batch_size_samples=SHAPE["batch_size"],
        lr=lr,
        lr_end=lr / 10,
        device="cpu",
        logger=LoggingConfig(log_to_wandb=False),
    )
    SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=batches).fit()
    stamps = batches.stamps
    skip = max(1, int(len(stamps) * THROUGHPUT_WARMUP_FRACTION))
    rate = (len(stamps) - 1 - skip) * SHAPE["batch_size"] / (stamps[-1] - stamps[skip])
    return {
        "impl": "saelens",
        "lr": lr,
        "vectors": len(stamps) * SHAPE["batch_size"],
        "vectors_per_second": rate,
        "recovery_at_init": init_recovery,
        "decode_impl": "dense",
        **_eval_saelens(sae, eval_vectors, source.planted.dictionary),
    }


# --- interleaved speed check ---
def interleaved_speed(
    source: SyntheticSource, threads: int, work_dir: Path, rounds: int = 5, steps: int = 6
) -> dict[str, float]:
    """Alternate short timed bursts of our step and SAELens's step on the same batches; medians of each.

    The host is shared, so load changes over minutes; alternating makes the ratio fair to both."""
    from sae_lens.config import LoggingConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer, SAETrainerConfig

    cfg = build_config(
        None,
        dict(SHAPE, total_vectors=2**24, threads=threads, out_dir=str(work_dir / "speed"), plot=False, seed=DATA_SEED),
    )
    ours = Trainer(cfg)
    ours._initialise_or_resume()
    torch.manual_seed(SAELENS_INIT_SEED)
    sae = TopKTrainingSAE(
        TopKTrainingSAEConfig(
            d_in=SHAPE["d_in"],
            d_sae=SHAPE["d_in"] * SHAPE["expansion_factor"],
            k=SHAPE["k"],
            dtype="float32",
            device="cpu",
        )
    )
    theirs = SAETrainer(
        cfg=SAETrainerConfig(
            total_training_samples=2**24,
            train_batch_size_samples=SHAPE["batch_size"],
            lr=3e-3,
            lr_end=3e-4,
            device="cpu",
            logger=LoggingConfig(log_to_wandb=False),
        ),
        sae=sae,
        data_provider=iter(()),
    )
    batches = [source.pool[i * SHAPE["batch_size"] : (i + 1) * SHAPE["batch_size"]] for i in range(steps)]

    def ours_step(x: torch.Tensor) -> None:
        ours._train_step(ours.members[0], x)

    def theirs_step(x: torch.Tensor) -> None:
        theirs.step(x)
        theirs.n_training_steps += 1

    rates: dict[str, list[float]] = {"ours": [], "saelens": []}
    for round_index in range(rounds + 1):
        for name, step in (("ours", ours_step), ("saelens", theirs_step)):
            start = time.perf_counter()
            for x in batches:
                step(x)
            if round_index:  # round 0 warms up both
                rates[name].append(steps * SHAPE["batch_size"] / (time.perf_counter() - start))
    medians = {name: sorted(values)[len(values) // 2] for name, values in rates.items()}
    return {"ours": medians["ours"], "saelens": medians["saelens"], "ratio": medians["ours"] / medians["saelens"]}


# --- report ---
def print_table(rows: list[dict[str, Any]], peak: float) -> None:
    d_in, n = SHAPE["d_in"], SHAPE["d_in"] * SHAPE["expansion_factor"]
    header = (
        f"{'size':>6} {'impl':<8} {'lr':>8} {'vectors/s':>10} {'ratio':>6} {'FVU':>7} {'L0':>6} {'dead':>7} "
        f"{'recovery':>9} {'rec@init':>9} {'%peak':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = row.get("ratio")
        frac = (
            row["vectors_per_second"]
            * (sparse_step_flops(d_in, n, SHAPE["k"]) if row["impl"] == "ours" else dense_step_flops(d_in, n))
            / 1e9
            / peak
        )
        print(
            f"{_size(row['vectors']):>6} {row['impl']:<8} {row['lr']:>8.2g} {row['vectors_per_second']:>10,.0f} "
            f"{(f'{ratio:.2f}x' if ratio else ''):>6} {row['fvu']:>7.4f} {row['l0']:>6.1f} "
            f"{row['dead_fraction']:>7.2%} {row['recovery']:>9.4f} {row['recovery_at_init']:>9.4f} {frac:>6.1%}"
        )
    print(
        f"fp32 matmul peak on this CPU: {peak:.1f} GFLOP/s. %peak counts ours as a sparse step "
        f"({sparse_step_flops(d_in, n, SHAPE['k']) / 1e6:.2f} MFLOP/vector) and SAELens as a dense step "
        f"({dense_step_flops(d_in, n) / 1e6:.2f} MFLOP/vector)."
    )


def _size(vectors: int) -> str:
    return f"{vectors / 2**20:.2g}M" if vectors >= 2**20 else f"{vectors / 2**10:.3g}k"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1M,4M", help="training vectors per run, e.g. 1M,4M or 64k")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--saelens-lrs",
        default="3e-3",
        help="SAELens learning rates; with several, the best FVU at the smallest size is used for all",
    )
    parser.add_argument("--skip-saelens", action="store_true")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--shape", action="append", help="D_INxN_LATENTSkK: benchmark this shape (bench_shapes)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="with --shape")
    parser.add_argument("--vectors", type=parse_size, default=None, help="with --shape: training vectors per path")
    parser.add_argument("--batch", type=int, default=4096, help="with --shape")
    parser.add_argument("--cache-rows", type=parse_size, default=parse_size("128k"), help="with --shape")
    parser.add_argument("--multi", action="store_true", help="4 SAEs on one LM forward vs 4 runs (bench_multi)")
    parser.add_argument("--multi-vectors", type=parse_size, default=parse_size("32k"), help="with --multi")
    args = parser.parse_args(argv)
    if args.shape:
        from training import bench_shapes

        device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        vectors = args.vectors or (parse_size("4M") if device == "cuda" else parse_size("64k"))
        threads = args.threads if device == "cpu" else None
        return bench_shapes.main(args.shape, device, vectors, args.batch, args.cache_rows, threads, args.json)
    if args.multi:
        from training import bench_multi

        return bench_multi.main(args.multi_vectors, args.threads, args.json)
    torch.set_num_threads(args.threads)
    tune_cpu_allocator()  # process-wide, so SAELens gets it too (without it SAELens runs ~2x slower here)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    lrs = [float(v) for v in args.saelens_lrs.split(",")]
    peak = matmul_peak_gflops()
    print(f"fp32 matmul peak: {peak:.1f} GFLOP/s with {args.threads} threads", flush=True)
    work_dir = Path(tempfile.mkdtemp(prefix="sae-bench-"))
    data_cfg = build_config(None, dict(SHAPE, seed=DATA_SEED))
    source = build_source(data_cfg, torch.device("cpu"))
    assert isinstance(source, SyntheticSource)
    eval_vectors = source.planted.sample(data_cfg.eval_vectors, make_generator(DATA_SEED, PURPOSE_EVAL))
    rows: list[dict[str, Any]] = []
    sweep: list[dict[str, Any]] = []
    speed: dict[str, float] | None = None
    try:
        for index, size in enumerate(sizes):
            ours = run_ours(size, args.threads, work_dir)
            print(f"ours    {_size(size)}: {json.dumps(ours)}", flush=True)
            rows.append(ours)
            if args.skip_saelens:
                continue
            if index == 0 and len(lrs) > 1:
                for lr in lrs:
                    result = run_saelens(size, lr, source, eval_vectors)
                    print(f"saelens {_size(size)} lr {lr:g}: {json.dumps(result)}", flush=True)
                    sweep.append(result)
                best = min(sweep, key=lambda r: r["fvu"])
                lrs = [best["lr"]]
                theirs = best
            else:
                theirs = run_saelens(size, lrs[0], source, eval_vectors)
                print(f"saelens {_size(size)} lr {lrs[0]:g}: {json.dumps(theirs)}", flush=True)
            ours["ratio"] = ours["vectors_per_second"] / theirs["vectors_per_second"]
            rows.append(theirs)
        speed = interleaved_speed(source, args.threads, work_dir) if not args.skip_saelens else None
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    print()
    if speed:
        print(
            f"interleaved speed check (5 alternating bursts of 6 steps, medians): ours {speed['ours']:,.0f} "
            f"vectors/s, SAELens {speed['saelens']:,.0f} vectors/s, ratio {speed['ratio']:.2f}x"
        )
    if sweep:
        print(
            "SAELens learning-rate sweep (smallest size): "
            + ", ".join(f"lr {r['lr']:g} FVU {r['fvu']:.4f} dead {r['dead_fraction']:.1%}" for r in sweep)
        )
    print_table(rows, peak)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"peak_gflops": peak, "rows": rows, "sweep": sweep, "speed": speed}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

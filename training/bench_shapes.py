"""Benchmark at a given SAE shape from cached activations: the trainer's vectors/s with the sparse and the dense
decoder path, and the share of the encoder matmul's peak that it reaches.

    python -m training.bench --device cuda --shape 4096x32768k64 --shape 4096x65536k64
    python -m training.bench --device cpu --shape 64x512k8 --vectors 16384          # a small CPU check (tests)

A shape is D_INxN_LATENTSkK. The activations are an on-disk activation cache (`shards` source, bf16 on CUDA, fp32
on CPU) of Gaussian rows, written once per shape; each path trains `--vectors` vectors at `--batch` (the trainer's
defaults otherwise: bf16 autocast on CUDA, fp32 on CPU) and reports the steady-state vectors/s of its summary. The
peak is the encoder matmul alone, [batch, d_in] x [d_in, n_latents] in the same precision, timed on the device: the
share is vectors/s x 2 d_in n_latents / that FLOP rate, i.e. how close the whole step comes to its one dense matmul.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from training.cache_activations import LayerWriter
from training.config import ConfigError, build_config
from training.trainer import Trainer

SHAPE = re.compile(r"^(\d+)x(\d+)k(\d+)$")
IMPLS = ("sparse", "dense")


def parse_shape(text: str) -> tuple[int, int, int]:
    match = SHAPE.match(text.strip())
    if not match:
        raise ConfigError(f"--shape: {text!r} is not D_INxN_LATENTSkK, e.g. 4096x32768k64")
    d_in, n_latents, k = (int(g) for g in match.groups())
    if not 0 < k <= n_latents or d_in <= 0:
        raise ConfigError(f"--shape: {text!r} needs 0 < k <= n_latents and d_in > 0")
    return d_in, n_latents, k


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def encoder_peak_flops(d_in: int, n_latents: int, batch: int, device: torch.device, repeats: int = 10) -> float:
    """FLOP/s of the encoder matmul alone at this shape and precision (bf16 on CUDA, fp32 on CPU), best of repeats."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    x = torch.randn(batch, d_in, device=device, dtype=dtype)
    w = torch.randn(n_latents, d_in, device=device, dtype=dtype)
    b = torch.zeros(n_latents, device=device, dtype=dtype)
    F.linear(x, w, b)
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        F.linear(x, w, b)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * batch * d_in * n_latents / best


def write_cache(path: Path, d_in: int, rows: int, device: torch.device) -> Path:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    writer = LayerWriter(path, "gaussian", dtype, shard_vectors=rows)
    gen = torch.Generator().manual_seed(0)
    for start in range(0, rows, 16384):
        writer.add(torch.randn(min(16384, rows - start), d_in, generator=gen))
    writer.finish()
    return path / "shard-00000.safetensors"


def bench_shape(
    shape: str, device_kind: str, vectors: int, batch: int, cache_rows: int, threads: int | None, work: Path
) -> list[dict[str, Any]]:
    d_in, n_latents, k = parse_shape(shape)
    device = torch.device("cuda" if device_kind == "cuda" else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device: cuda asked for, but torch sees no CUDA device here")
    rows = max(batch * 2, min(cache_rows, vectors))
    shard = write_cache(work / shape, d_in, rows, device)
    peak = encoder_peak_flops(d_in, n_latents, batch, device)
    out = []
    for impl in IMPLS:
        cfg = build_config(
            None,
            dict(
                data_source="shards",
                shard_paths=[str(shard)],
                n_latents=n_latents,
                k=k,
                batch_size=batch,
                total_vectors=vectors,
                decode_impl=impl,
                device=device_kind,
                shuffle_buffer=rows,
                eval_vectors=min(batch, rows // 10),
                log_every=10**6,
                checkpoint_every=10**9,
                threads=threads,
                plot=False,
                out_dir=str(work / f"{shape}-{impl}"),
            ),
        )
        trainer = Trainer(cfg)
        trainer._log = lambda line: None
        summary = trainer.run().summary
        vps = float(summary["vectors_per_second"] or 0.0)
        out.append(
            {
                "shape": shape,
                "impl": impl,
                "device": summary["device"],
                "precision": summary["precision"],
                "vectors_per_second": vps,
                "encoder_peak_tflops": peak / 1e12,
                "share_of_encoder_peak": vps * 2 * d_in * n_latents / peak,
                "fvu": summary["fvu"],
                "l0": summary["l0"],
                "steps": summary["steps"],
            }
        )
    return out


def main(
    shapes: list[str],
    device_kind: str,
    vectors: int,
    batch: int,
    cache_rows: int,
    threads: int | None,
    json_path: str | None,
) -> int:
    work = Path(tempfile.mkdtemp(prefix="sae-bench-shape-"))
    rows: list[dict[str, Any]] = []
    try:
        for shape in shapes:
            rows.extend(bench_shape(shape, device_kind, vectors, batch, cache_rows, threads, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    header = (
        f"{'shape':<16} {'path':<7} {'device':<8} {'prec':<5} {'vectors/s':>12} {'enc peak':>12} {'share':>6} "
        f"{'FVU':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['shape']:<16} {r['impl']:<7} {r['device']:<8} {r['precision']:<5} {r['vectors_per_second']:>12,.0f} "
            f"{r['encoder_peak_tflops']:>9.3f} TF {r['share_of_encoder_peak']:>6.1%} {r['fvu']:>7.4f}"
        )
    print(json.dumps(rows))
    if json_path:
        Path(json_path).write_text(json.dumps(rows, indent=2))
    return 0

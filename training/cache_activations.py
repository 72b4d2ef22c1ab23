"""Activation caching: run an `hf` source once, write its activations as sharded .safetensors with a manifest, and
train any number of later `shards` runs on them (`shard_paths: [CACHE_DIR]`).

    python -m training.cache_activations --config CONFIG.yaml [--key value ...] [--shard-vectors 262144]
        [--dtype auto|float32|bfloat16|float16] [--max-tokens N]

The config is a training config with `data_source: hf` (hf_model or hf_model_config, hf_layer or `saes` with
several layers, hf_tokens or hf_text_files, hf_context, hf_batch_sequences, hf_skip_first_token, seed, device);
`out_dir` is where the cache goes. Every window of the token file is run (none held out here: the shards run holds
out its own last rows), in a shuffled window order (the config's seed), so the shards are already mixed.

Writes, per hooked layer (out_dir itself for one layer, out_dir/<layer> for several):
`shard-NNNNN.safetensors` (one tensor `activations` [rows, d_in]) and `manifest.json`: format, model, layer, d_in,
context, skip_first_token, token_count, vectors, windows, dtype, shard_key and the shards (file, rows, sha256).
`status.json` ({state: finished}) last. Exit codes as training.train: 0 done, 2 bad config, 1 failure.

Under torchrun (a fleet run with `training.cache`, see README "Activation caching on the fleet") every rank runs
this command: rank r caches windows r, r + W, ... into its own `shard-rNNN-*` files and writes its launch heartbeat
(`ranks/rank-<r>.json`) after its first chunk; rank 0 gathers every rank's shard list and writes one manifest.
While it runs, rank 0 keeps `status.json` at `{state: running, task: cache, step: chunks done, total_steps:
chunks}`; at the end `{state: finished, task: cache, vectors, manifests: [paths from out_dir]}`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from training.changes import CACHE_TASK
from training.checkpoint import write_json_atomic
from training.config import ConfigError, TrainConfig, build_config, parse_cli_overrides
from training.data import HFActivationSource
from training.heartbeat import write_heartbeat
from training.outputs import file_sha256
from training.trainer import Distributed, resolve_device

MANIFEST = "manifest.json"
FORMAT = "lambda-sae activation cache v1"
SHARD_KEY = "activations"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class LayerWriter:
    """Shards of one layer's activations: rows are buffered until a shard is full, then written."""

    def __init__(
        self, out_dir: Path, layer: str, dtype: torch.dtype, shard_vectors: int, prefix: str = "shard-"
    ) -> None:
        self.out_dir, self.layer, self.dtype, self.shard_vectors = out_dir, layer, dtype, shard_vectors
        self.prefix = prefix
        self.pending: list[torch.Tensor] = []
        self.pending_rows = 0
        self.shards: list[dict[str, Any]] = []
        out_dir.mkdir(parents=True, exist_ok=True)

    def add(self, acts: torch.Tensor) -> None:
        self.pending.append(acts.to(self.dtype))
        self.pending_rows += len(acts)
        while self.pending_rows >= self.shard_vectors:
            rows = torch.cat(self.pending)
            self._write(rows[: self.shard_vectors])
            rest = rows[self.shard_vectors :]
            self.pending, self.pending_rows = ([rest] if len(rest) else []), len(rest)

    def finish(self) -> list[dict[str, Any]]:
        if self.pending_rows:
            self._write(torch.cat(self.pending))
            self.pending, self.pending_rows = [], 0
        return self.shards

    def _write(self, rows: torch.Tensor) -> None:
        name = f"{self.prefix}{len(self.shards):05d}.safetensors"
        tmp = self.out_dir / f".{name}.tmp"
        save_file({SHARD_KEY: rows.contiguous()}, str(tmp))
        tmp.replace(self.out_dir / name)
        self.shards.append({"file": name, "rows": len(rows), "sha256": file_sha256(self.out_dir / name)})


def clear_cache_dir(out_dir: Path) -> None:
    """A rerun replaces the cache, never mixes with it (rank 0, before any rank writes)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*out_dir.glob("shard-*.safetensors"), out_dir / MANIFEST]:
        stale.unlink(missing_ok=True)


def cache(cfg: TrainConfig, shard_vectors: int, dtype_name: str, max_tokens: int | None) -> list[Path]:
    """Runs the source over every window once (this rank's share of them); returns the manifest paths written."""
    if cfg.data_source != "hf":
        raise ConfigError("data_source: caching runs an 'hf' source (a hooked LM); set data_source: hf")
    if shard_vectors <= 0:
        raise ConfigError(f"--shard-vectors: must be > 0, got {shard_vectors}")
    if dtype_name != "auto" and dtype_name not in DTYPES:
        raise ConfigError(f"--dtype: must be auto or one of {', '.join(DTYPES)}; got {dtype_name!r}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(cfg, local_rank)
    ranks = Distributed(device.type)
    layers = cfg.layers()
    data_seed, _, _ = cfg.seeds()
    source = HFActivationSource(dataclasses.replace(cfg, eval_vectors=0), device, data_seed, layers)
    dtype = DTYPES[dtype_name] if dtype_name != "auto" else next(source.model.parameters()).dtype
    root = Path(cfg.out_dir)
    several = len(layers) > 1
    dirs = [root / layer if several else root for layer in layers]
    if ranks.is_main:
        for out_dir in dirs:
            clear_cache_dir(out_dir)
    ranks.barrier()
    prefix = f"shard-r{ranks.rank:03d}-" if ranks.enabled else "shard-"
    writers = [LayerWriter(d, layer, dtype, shard_vectors, prefix) for d, layer in zip(dirs, layers, strict=True)]
    chunks = source.num_chunks(0)
    if max_tokens is not None:
        chunks = min(chunks, max(1, max_tokens // (cfg.hf_context * cfg.hf_batch_sequences)))
    mine = range(ranks.rank, chunks, ranks.world)
    d, start, vectors = source.d_in, time.perf_counter(), 0
    for done, index in enumerate(mine, start=1):
        acts = source.chunk(0, index)  # [rows, len(layers) * d_in], windows in the seed's shuffled order
        for i, writer in enumerate(writers):
            writer.add(acts[:, i * d : (i + 1) * d])
        vectors += len(acts)
        if done == 1:
            write_heartbeat(root, ranks.rank, ranks.world, done)
        if done % max(1, len(mine) // 20) == 0 or done == len(mine):
            rate = vectors / max(time.perf_counter() - start, 1e-9)
            print(f"cached {done}/{len(mine)} chunks | {vectors:,} vectors | {rate:,.0f} vectors/s", flush=True)
            if ranks.is_main:
                write_json_atomic(
                    root / "status.json",
                    {"state": "running", "task": CACHE_TASK, "step": done * ranks.world, "total_steps": chunks},
                )
    if not len(mine):
        write_heartbeat(root, ranks.rank, ranks.world, 0)
    gathered = ranks.gather([writer.finish() for writer in writers])  # per rank: per layer, its shards
    total = ranks.gather(vectors)
    manifests = []
    if ranks.is_main:
        for i, writer in enumerate(writers):
            shards = [shard for per_rank in gathered for shard in per_rank[i]]
            manifest = {
                "format": FORMAT,
                "model": cfg.hf_model,
                "hf_model_config": cfg.hf_model_config,
                "layer": writer.layer,
                "d_in": d,
                "context": cfg.hf_context,
                "skip_first_token": cfg.hf_skip_first_token,
                "windows": chunks * cfg.hf_batch_sequences,
                "token_count": chunks * cfg.hf_batch_sequences * cfg.hf_context,
                "vectors": sum(s["rows"] for s in shards),
                "dtype": str(dtype).removeprefix("torch."),
                "shard_key": SHARD_KEY,
                "tokens": cfg.hf_tokens or cfg.hf_text_files,
                "seed": data_seed,
                "ranks": ranks.world,
                "shards": shards,
            }
            write_json_atomic(writer.out_dir / MANIFEST, manifest)
            manifests.append(writer.out_dir / MANIFEST)
        write_json_atomic(
            root / "status.json",
            {
                "state": "finished",
                "task": CACHE_TASK,  # what the fleet's views call a chunk, not a step
                "reason": "completed",
                "step": chunks,
                "total_steps": chunks,
                "vectors": sum(total),
                "manifests": [m.relative_to(root).as_posix() for m in manifests],  # as the run dir holds them
            },
        )
    ranks.close()
    return manifests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.cache_activations",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML file of training config keys (data_source: hf)")
    parser.add_argument("--shard-vectors", type=int, default=262_144, help="rows per shard file")
    parser.add_argument("--dtype", default="auto", help="auto (the LM's: bf16 on CUDA, fp32 on CPU) or a dtype")
    parser.add_argument("--max-tokens", type=int, default=None, help="stop after about this many tokens")
    args, rest = parser.parse_known_args(argv)
    try:
        cfg = build_config(args.config, parse_cli_overrides(rest))
        manifests = cache(cfg, args.shard_vectors, args.dtype, args.max_tokens)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        traceback.print_exc()
        print(f"cache error: {' '.join(f'{type(exc).__name__}: {exc}'.split())}", file=sys.stderr, flush=True)
        return 1
    for manifest in manifests:
        print(f"wrote {manifest}: train on it with data_source: shards, shard_paths: [{manifest.parent}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())

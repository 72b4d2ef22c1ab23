"""Activation sources and the shuffling stream that turns them into training batches.

Why one file: the three sources and the stream meet at one contract (`ChunkSource`), changed in one place.

A source is a deterministic list of chunks per epoch (`num_chunks`, `chunk(epoch, i)` -> [rows, d_in] float32 on
CPU). `ShuffledStream` reads a window of consecutive chunks (this rank's share: chunk i belongs to rank
i % world), shuffles the window in RAM (the mixing buffer) and hands out batches. Its state is three integers, so a
resumed run regenerates exactly the same batches: the window is re-read and re-shuffled from its seed. A run resumed
on another number of ranks starts each rank where `remap_stream_states` says (no chunk skipped).

Sources: `SyntheticSource` (planted ground-truth features), `ShardSource` (.safetensors / .npy / .pt files),
`HFActivationSource` (a causal LM hooked at a named module).
"""

from __future__ import annotations

import glob
import math
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from training.config import ConfigError, TrainConfig
from training.evaluate import spliced_lm_loss

# Purpose tags mixed into seeds so that data, init and shuffling never share a random stream, even with equal seeds.
PURPOSE_DICTIONARY, PURPOSE_INIT, PURPOSE_SHUFFLE, PURPOSE_SAMPLES, PURPOSE_EVAL = 11, 12, 13, 14, 15


def make_generator(seed: int, *tags: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, *tags]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


class ChunkSource(Protocol):
    d_in: int

    def num_chunks(self, epoch: int) -> int: ...

    def chunk(self, epoch: int, index: int) -> Tensor: ...


# --- synthetic planted features ---
class PlantedFeatures:
    """Unit-norm ground-truth directions with Zipf-like firing rates, ~`active` firing per vector, a constant
    offset and isotropic noise: x = offset + sum_i a_i f_i + noise, a_i ~ U(0.5, 1.5) when feature i fires."""

    def __init__(
        self, d_in: int, n_features: int, active: float, zipf: float, noise: float, offset_norm: float, seed: int
    ) -> None:
        gen = make_generator(seed, PURPOSE_DICTIONARY)
        dictionary = torch.randn(n_features, d_in, generator=gen)
        self.dictionary = dictionary / dictionary.norm(dim=1, keepdim=True)
        rates = 1.0 / torch.arange(1, n_features + 1, dtype=torch.float64) ** zipf
        self.rates = (rates * active / rates.sum()).clamp(max=1.0).float()
        offset = torch.randn(d_in, generator=gen)
        self.offset = offset / offset.norm() * offset_norm
        self.noise, self.d_in, self.seed = noise, d_in, seed

    def sample(self, rows: int, gen: torch.Generator, block: int = 8192) -> Tensor:
        out = torch.empty(rows, self.d_in)
        for start in range(0, rows, block):
            m = min(block, rows - start)
            fires = torch.rand(m, len(self.rates), generator=gen) < self.rates
            row_ids, feat_ids = fires.nonzero(as_tuple=True)
            coefs = 0.5 + torch.rand(len(feat_ids), generator=gen)
            offsets = torch.searchsorted(row_ids, torch.arange(m))
            signal = torch.nn.functional.embedding_bag(
                feat_ids, self.dictionary, offsets, per_sample_weights=coefs, mode="sum"
            )
            out[start : start + m] = signal + self.offset + self.noise * torch.randn(m, self.d_in, generator=gen)
        return out


class SyntheticSource:
    """A fixed pool of planted-feature vectors (generated once), cut into chunks; epochs re-shuffle it."""

    def __init__(self, planted: PlantedFeatures, pool_vectors: int, chunk_rows: int = 8192) -> None:
        self.planted, self.d_in = planted, planted.d_in
        self.pool = planted.sample(pool_vectors, make_generator(planted.seed, PURPOSE_SAMPLES))
        self.chunk_rows = chunk_rows

    def num_chunks(self, epoch: int) -> int:
        return math.ceil(len(self.pool) / self.chunk_rows)

    def chunk(self, epoch: int, index: int) -> Tensor:
        return self.pool[index * self.chunk_rows : (index + 1) * self.chunk_rows]


# --- activation shards on disk ---
@dataclass(frozen=True)
class ShardSlice:
    path: str
    start: int
    stop: int


def _open_shard(path: str, key: str | None) -> Any:
    """A row-sliceable view of one shard (memory-mapped where the format allows)."""
    suffix = Path(path).suffix
    if suffix == ".npy":
        return np.load(path, mmap_mode="r")
    if suffix == ".safetensors":
        from safetensors import safe_open

        handle = safe_open(path, framework="pt")
        names = list(handle.keys())
        name = key if key is not None else (names[0] if len(names) == 1 else None)
        if name is None or name not in names:
            raise ConfigError(f"shard_key: {path} holds tensors {names}; set shard_key to the activation tensor")
        return handle.get_slice(name)
    if suffix == ".pt":
        loaded = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(loaded, dict):
            if key is None and len(loaded) == 1:
                key = next(iter(loaded))
            if key not in loaded:
                raise ConfigError(f"shard_key: {path} holds {list(loaded)}; set shard_key to the activation tensor")
            loaded = loaded[key]
        return loaded
    raise ConfigError(f"shard_paths: {path} has unsupported suffix {suffix!r}; use .safetensors, .npy or .pt")


def _shard_shape(view: Any) -> tuple[int, ...]:
    shape = view.get_shape() if hasattr(view, "get_shape") else view.shape
    return tuple(int(s) for s in shape)


CACHE_MANIFEST = "manifest.json"


def read_cache_manifest(path: Path) -> tuple[dict[str, Any], list[str]]:
    """An activation cache (`python -m training.cache_activations`): its directory or its manifest.json -> (manifest,
    shard files in manifest order), each checked to exist with the rows the manifest says."""
    import json

    manifest_path = path / CACHE_MANIFEST if path.is_dir() else path
    if not manifest_path.is_file():
        raise ConfigError(
            f"shard_paths: {path} is a directory without {CACHE_MANIFEST}; give an activation cache directory "
            "(python -m training.cache_activations) or the shard files (a glob such as DIR/*.safetensors)"
        )
    manifest = json.loads(manifest_path.read_text())
    files = []
    for shard in manifest.get("shards", []):
        file = manifest_path.parent / shard["file"]
        if not file.is_file():
            raise ConfigError(f"shard_paths: {manifest_path} lists {shard['file']}, which is missing; re-run the cache")
        rows = math.prod(_shard_shape(_open_shard(str(file), manifest.get("shard_key")))[:-1])
        if rows != shard["rows"]:
            raise ConfigError(
                f"shard_paths: {file} has {rows} rows, {manifest_path} says {shard['rows']}; re-run the cache"
            )
        files.append(str(file))
    if not files:
        raise ConfigError(f"shard_paths: {manifest_path} lists no shards; re-run the cache")
    return manifest, files


class ShardSource:
    """Activation shards [rows, d_in] (or [..., d_in], flattened), split into slices of at most `chunk_rows`;
    the slice order is re-shuffled every epoch. The last `holdout_rows` rows (by path order; at most a tenth of the
    data) are held out: never streamed, returned by `heldout()` for the final metrics."""

    def __init__(
        self, patterns: list[str], key: str | None, seed: int, chunk_rows: int = 65536, holdout_rows: int = 0
    ) -> None:
        paths: list[str] = []
        self.manifest: dict[str, Any] | None = None  # the first activation cache's manifest, if any
        for pattern in patterns:
            if Path(pattern).is_dir() or Path(pattern).name == CACHE_MANIFEST:
                manifest, files = read_cache_manifest(Path(pattern))
                self.manifest = self.manifest or manifest
                paths.extend(files)
                continue
            matched = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
            if not matched:
                raise ConfigError(f"shard_paths: pattern {pattern!r} matched no files")
            paths.extend(matched)
        self.key, self.seed = key, seed
        self.d_in = 0
        sizes: list[tuple[str, int]] = []
        for path in paths:
            if not Path(path).is_file():
                raise ConfigError(f"shard_paths: {path} does not exist")
            shape = _shard_shape(_open_shard(path, key))
            rows, d_in = math.prod(shape[:-1]), shape[-1]
            if self.d_in and d_in != self.d_in:
                raise ConfigError(f"shard_paths: {path} has width {d_in}, earlier shards have {self.d_in}")
            self.d_in = d_in
            sizes.append((path, rows))
        self.holdout_rows = min(holdout_rows, sum(rows for _, rows in sizes) // 10)
        self.heldout_slices: list[ShardSlice] = []
        train_rows, need = dict(sizes), self.holdout_rows
        for path, rows in reversed(sizes):
            take = min(need, rows)
            if take:
                self.heldout_slices.insert(0, ShardSlice(path, rows - take, rows))
                train_rows[path], need = rows - take, need - take
        self.slices = [
            ShardSlice(path, s, min(train_rows[path], s + chunk_rows))
            for path, _ in sizes
            for s in range(0, train_rows[path], chunk_rows)
        ]
        self._cache: tuple[str, Any] | None = None

    def num_chunks(self, epoch: int) -> int:
        return len(self.slices)

    def _order(self, epoch: int) -> list[int]:
        return torch.randperm(len(self.slices), generator=make_generator(self.seed, PURPOSE_SHUFFLE, epoch)).tolist()

    def chunk(self, epoch: int, index: int) -> Tensor:
        return self._read(self.slices[self._order(epoch)[index]])

    def heldout(self) -> Tensor | None:
        return torch.cat([self._read(piece) for piece in self.heldout_slices]) if self.heldout_slices else None

    def _read(self, piece: ShardSlice) -> Tensor:
        if self._cache is None or self._cache[0] != piece.path:
            self._cache = (piece.path, _open_shard(piece.path, self.key))
        view = self._cache[1]
        shape = _shard_shape(view)
        if len(shape) > 2:  # [..., d_in]: flatten leading dims (needs a full read)
            flat = torch.as_tensor(np.asarray(view[:])).reshape(-1, shape[-1])
            return flat[piece.start : piece.stop].float()
        rows = view[piece.start : piece.stop]
        return torch.as_tensor(np.array(rows) if isinstance(rows, np.ndarray) else rows).float()


# --- Hugging Face causal LM hooked at a named layer ---
class _StopForward(Exception):
    pass


def load_token_ids(path: str) -> np.ndarray:
    suffix = Path(path).suffix
    if suffix == ".npy":
        return np.load(path, mmap_mode="r").reshape(-1)
    if suffix == ".bin":
        return np.memmap(path, dtype=np.uint16, mode="r")
    if suffix == ".pt":
        return torch.load(path, map_location="cpu", weights_only=True).reshape(-1).numpy()
    raise ConfigError(f"hf_tokens: {path} has unsupported suffix {suffix!r}; use .npy, .bin (uint16) or .pt")


class HFActivationSource:
    """Runs a causal LM over token windows and returns the output of module `layer` (forward stops there). The last
    windows (enough for `eval_vectors` activations, at most a tenth) are held out: never streamed, returned by
    `heldout()` for the final metrics."""

    def __init__(self, cfg: TrainConfig, device: torch.device, seed: int, layers: list[str] | None = None) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM

        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        if cfg.hf_model_config is not None:
            spec = dict(cfg.hf_model_config)
            model_type = spec.pop("model_type", None)
            if model_type is None:
                raise ConfigError("hf_model_config: needs model_type (e.g. gpt2, llama) plus that config's fields")
            torch.manual_seed(seed)  # weights of a from-config model come from the global RNG
            model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **spec))
        else:
            model = AutoModelForCausalLM.from_pretrained(cfg.hf_model, dtype=dtype)
        self.model = model.to(device=device, dtype=dtype).eval()
        # Several layers: one forward captures them all (it stops after the last of them has run); a chunk is their
        # activations side by side, [rows, len(layers) * d_in], layer i in columns [i * d_in, (i + 1) * d_in).
        self.layers = list(layers) if layers else [cfg.hf_layer or ""]
        self.modules = []
        for layer in self.layers:
            try:
                self.modules.append(self.model.get_submodule(layer))
            except AttributeError as exc:
                names = [n for n, _ in self.model.named_modules() if n.count(".") <= 3][:40]
                raise ConfigError(f"hf_layer: no module {layer!r} in the model; some names: {names}") from exc
        self.module = self.modules[0]
        self._forward_lock = threading.Lock()
        if cfg.hf_tokens is not None:
            tokens = load_token_ids(cfg.hf_tokens)
        else:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(cfg.hf_model)
            text = "\n\n".join(Path(p).read_text() for p in cfg.hf_text_files)
            tokens = np.asarray(tokenizer(text)["input_ids"], dtype=np.int64)
        self.context, self.per_chunk = cfg.hf_context, cfg.hf_batch_sequences
        self.skip_first = cfg.hf_skip_first_token
        total_windows = len(tokens) // self.context
        per_window = max(1, self.context - int(self.skip_first))
        self.holdout_windows = min(math.ceil(cfg.eval_vectors / per_window), total_windows // 10)
        self.n_windows = total_windows - self.holdout_windows  # the windows training streams
        if self.n_windows < self.per_chunk:
            raise ConfigError(
                f"hf_tokens: {len(tokens)} tokens make {total_windows} windows of hf_context="
                f"{self.context} ({self.holdout_windows} held out); need at least "
                f"hf_batch_sequences={self.per_chunk} to train on"
            )
        self.tokens, self.device, self.seed = tokens, device, seed
        hidden = getattr(self.model.config, "hidden_size", None) or self.model.config.n_embd
        self.d_in = int(hidden)

    def num_chunks(self, epoch: int) -> int:
        return self.n_windows // self.per_chunk

    def chunk(self, epoch: int, index: int) -> Tensor:
        order = torch.randperm(self.n_windows, generator=make_generator(self.seed, PURPOSE_SHUFFLE, epoch))
        return self._activations(order[index * self.per_chunk : (index + 1) * self.per_chunk].tolist())

    def heldout(self) -> Tensor | None:
        held = self._heldout_indices()
        parts = [self._activations(held[i : i + self.per_chunk]) for i in range(0, len(held), self.per_chunk)]
        return torch.cat(parts) if parts else None

    def heldout_windows(self) -> Tensor:
        """The held-out token windows, [holdout_windows, context], on the model's device."""
        return torch.stack([self._window(w) for w in self._heldout_indices()])

    def lm_loss_with(self, reconstruct: Callable[[Tensor], Tensor], layer: int = 0) -> dict[str, float | None]:
        """The LM's loss on the held-out windows with the output of hooked layer `layer` replaced by `reconstruct` of
        it (see `evaluate.spliced_lm_loss`); empty when nothing is held out."""
        if not self.holdout_windows:
            return {}
        return spliced_lm_loss(
            self.model, self.modules[layer], self.heldout_windows(), reconstruct, self.skip_first, self.per_chunk
        )

    def _heldout_indices(self) -> list[int]:
        return list(range(self.n_windows, self.n_windows + self.holdout_windows))

    def _window(self, index: int) -> Tensor:
        ids = np.asarray(self.tokens[index * self.context : (index + 1) * self.context]).astype(np.int64)
        return torch.as_tensor(ids, device=self.device)

    @torch.no_grad()
    def _activations(self, windows: list[int]) -> Tensor:
        with self._forward_lock:  # hooks are the module's, not the thread's: one hooked forward at a time
            return self._hooked_forward(windows)

    def _hooked_forward(self, windows: list[int]) -> Tensor:
        ids = torch.stack([self._window(w) for w in windows])
        captured: dict[int, Tensor] = {}

        def hook_for(i: int) -> Callable[[Any, Any, Any], None]:
            def hook(_module: Any, _inputs: Any, output: Any) -> None:
                captured[i] = output[0] if isinstance(output, tuple) else output
                if len(captured) == len(self.modules):
                    raise _StopForward

            return hook

        handles = [module.register_forward_hook(hook_for(i)) for i, module in enumerate(self.modules)]
        try:
            self.model(ids)
        except _StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
        parts = [captured[i] for i in range(len(self.modules))]
        acts = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        if self.skip_first:
            acts = acts[:, 1:]
        return acts.reshape(-1, acts.shape[-1]).float().cpu()


# --- the shuffling stream ---
@dataclass
class StreamState:
    epoch: int = 0
    window_start: int = 0  # index (in this rank's chunk list) of the window's first chunk
    offset: int = 0  # rows already handed out from the current window


class ShuffledStream:
    """Batches of `batch_rows` drawn from shuffled windows of about `buffer_rows` vectors (rows left over at the
    end of a window, fewer than a batch, are dropped so that a state is just three integers)."""

    def __init__(
        self,
        source: ChunkSource,
        batch_rows: int,
        buffer_rows: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        prefetch: bool = False,
    ) -> None:
        self.source, self.batch_rows, self.buffer_rows = source, batch_rows, max(buffer_rows, batch_rows)
        self.seed, self.rank, self.world = seed, rank, world
        self.state = StreamState()
        self._window: Tensor | None = None
        self._order = torch.empty(0, dtype=torch.long)
        self._window_end = 0
        # prefetch: while batches are drawn from one window, a background thread reads the next one (for an hf source
        # the LM forward of the next window overlaps the SAE steps). The same chunks either way: only when changes.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") if prefetch else None
        self._next: tuple[tuple[int, int], Future[tuple[list[Tensor], int, int]]] | None = None

    def _my_chunks(self, epoch: int) -> list[int]:
        return list(range(self.rank, self.source.num_chunks(epoch), self.world))

    def _read_window(self, epoch: int, start: int) -> tuple[list[Tensor], int, int]:
        """The chunks of the window starting at this rank's chunk `start` of `epoch`: (parts, rows, end)."""
        mine = self._my_chunks(epoch)
        parts, rows, i = [], 0, start
        while i < len(mine) and rows < self.buffer_rows:
            part = self.source.chunk(epoch, mine[i])
            parts.append(part)
            rows += len(part)
            i += 1
        return parts, rows, i

    def _read_window_in_background(self, epoch: int, start: int) -> tuple[list[Tensor], int, int]:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            with torch.cuda.stream(torch.cuda.Stream()):  # the LM forward beside the SAE step, not behind it
                return self._read_window(epoch, start)
        return self._read_window(epoch, start)

    def _window_parts(self, epoch: int, start: int) -> tuple[list[Tensor], int, int]:
        if self._next is not None:
            key, future = self._next
            self._next = None
            result = future.result()  # always waited for: a read is never left running
            if key == (epoch, start):
                return result
        return self._read_window(epoch, start)

    def _prefetch_next(self) -> None:
        if self._pool is not None:
            key = (self.state.epoch, self._window_end)
            self._next = (key, self._pool.submit(self._read_window_in_background, *key))

    def close(self) -> None:
        """Waits for a background read and stops its thread (a no-op without prefetch)."""
        if self._next is not None:
            self._next[1].result()
            self._next = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _load_window(self) -> None:
        for _ in range(3):  # an empty remainder of an epoch moves on to the next epoch
            mine = self._my_chunks(self.state.epoch)
            parts, rows, i = self._window_parts(self.state.epoch, self.state.window_start)
            if rows >= self.batch_rows:
                gen = make_generator(self.seed, PURPOSE_SHUFFLE, self.state.epoch, self.state.window_start, self.rank)
                self._window = parts[0] if len(parts) == 1 else torch.cat(parts)
                self._order = torch.randperm(rows, generator=gen)  # batches gather through it: no shuffled copy
                self._window_end = i
                self._prefetch_next()
                return
            if not mine:
                chunks = self.source.num_chunks(self.state.epoch)
                raise ConfigError(
                    f"data: {chunks} chunk(s) for {self.world} ranks (a rank reads whole chunks), so "
                    f"rank {self.rank} gets none; run on at most {chunks} ranks or give it more data"
                )
            if self.state.window_start == 0:
                raise ConfigError(
                    f"batch_size: this rank's data ({rows} vectors per epoch) is smaller than one "
                    f"batch ({self.batch_rows}); lower batch_size or add data"
                )
            self.state = StreamState(epoch=self.state.epoch + 1)
        raise RuntimeError("data stream produced no batch")

    def next_batch(self) -> Tensor:
        if self._window is None:
            self._load_window()
        assert self._window is not None
        if self.state.offset + self.batch_rows > len(self._order):
            self.state = StreamState(self.state.epoch, self._window_end, 0)
            self._load_window()
        assert self._window is not None
        batch = self._window.index_select(0, self._order[self.state.offset : self.state.offset + self.batch_rows])
        self.state.offset += self.batch_rows
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.state.epoch, "window_start": self.state.window_start, "offset": self.state.offset}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.state = StreamState(**state)
        self._window = None
        # _load_window keeps offset: the same window is rebuilt and its first `offset` rows are skipped


def rank_rows(batch_size: int, world: int, rank: int) -> int:
    """Rank `rank`'s share of a global batch: the first `batch_size % world` ranks take one row more."""
    return batch_size // world + (1 if rank < batch_size % world else 0)


def remap_stream_states(states: list[dict[str, int]], world: int) -> list[dict[str, int]]:
    """Stream states for `world` ranks resuming from the states `len(states)` ranks saved, skipping no chunk.

    Old rank r's window starts at global chunk `window_start * old_world + r`; every chunk before the earliest such
    position (over all ranks, per epoch) was read to its end. Each new rank starts at its first own chunk at or after
    that position, offset 0: the chunks of a window an old rank had partly read, and any an old rank ahead of the
    others had already read, are read again (a few windows re-read, never one skipped). A position past a new rank's
    last chunk moves it on to the next epoch when it loads its window."""
    old_world = len(states)
    epoch, position = min((s["epoch"], s["window_start"] * old_world + rank) for rank, s in enumerate(states))
    # ceil((position - rank) / world): the first j with j * world + rank >= position (never negative: rank < world)
    return [
        {"epoch": epoch, "window_start": (position - rank + world - 1) // world, "offset": 0} for rank in range(world)
    ]


def build_source(cfg: TrainConfig, device: torch.device, layers: list[str] | None = None) -> ChunkSource:
    data_seed, _, shuffle_seed = cfg.seeds()
    if cfg.data_source == "synthetic":
        if cfg.d_in is None:
            raise ConfigError("d_in: the synthetic source needs d_in (the activation width to plant features in)")
        planted = PlantedFeatures(
            cfg.d_in,
            cfg.synthetic_features,
            cfg.synthetic_active,
            cfg.synthetic_zipf,
            cfg.synthetic_noise,
            cfg.synthetic_offset_norm,
            data_seed,
        )
        return SyntheticSource(planted, pool_vectors=cfg.synthetic_pool)
    if cfg.data_source == "shards":
        return ShardSource(cfg.shard_paths, cfg.shard_key, shuffle_seed, holdout_rows=cfg.eval_vectors)
    return HFActivationSource(cfg, device, data_seed, layers)

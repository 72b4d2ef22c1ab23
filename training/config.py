"""Training configuration: one flat dataclass, loaded from YAML and overridden from the command line.

Every key is a field of `TrainConfig`. Overrides: `--set key=value` or `--key value` (dashes and underscores are
interchangeable). Values on the command line are parsed as YAML scalars (`1e-3`, `true`, `null`, `[a, b]`).
`validate()` raises `ConfigError` naming the offending key and how to fix it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ARCHITECTURES = ("topk", "batchtopk")
DECODE_IMPLS = ("auto", "sparse", "dense")
DATA_SOURCES = ("synthetic", "shards", "hf")
B_DEC_INITS = ("median", "mean", "zero")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
PREFETCH = ("auto", "on", "off")
# Keys one entry of `saes` may set: what makes one SAE differ from another trained on the same LM forward. Everything
# else (data, batch, schedule, runtime) is the run's and shared.
SAE_ENTRY_KEYS = (
    "name",
    "hf_layer",
    "k",
    "expansion_factor",
    "n_latents",
    "architecture",
    "batchtopk_candidates",
    "decode_impl",
    "auxk_alpha",
    "k_aux",
    "dead_window_vectors",
    "b_dec_init",
    "lr",
    "lr_base",
    "init_seed",
)


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range; the message names the key and the fix."""


@dataclass
class TrainConfig:
    # --- model ---
    d_in: int | None = None  # inferred from the data source when null
    expansion_factor: int = 8
    n_latents: int | None = None  # overrides expansion_factor when set
    k: int = 32
    architecture: str = "topk"  # topk | batchtopk
    batchtopk_candidates: int = 4  # BatchTopK keeps per-row top (k * this) candidates before the batch-wide cut
    decode_impl: str = "auto"  # auto (time both at start) | sparse (embedding_bag) | dense (matmul)
    auxk_alpha: float = 1 / 32
    k_aux: int | None = None  # default d_in // 2
    dead_window_vectors: int | None = None  # default min(10M, total_vectors // 16)
    b_dec_init: str = "median"  # geometric median | mean | zero, of the first batches
    # --- optimisation ---
    lr: float | None = None  # default lr_base * sqrt(2**14 / max(n_latents, 2048))
    lr_base: float = 3.5e-3  # tuned on the planted benchmark: lr 1e-2 at 2048 latents
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    warmup_steps: int | None = None  # default min(1000, 5% of steps)
    decay_start: float = 0.7  # fraction of steps after which lr decays linearly to 0
    batch_size: int = 4096  # vectors per optimiser step, summed over all ranks
    total_vectors: int = 1_000_000
    # --- data ---
    data_source: str = "synthetic"
    seed: int = 0  # base seed; the others default to seed + offset so they never share a stream
    data_seed: int | None = None
    init_seed: int | None = None
    shuffle_seed: int | None = None
    synthetic_features: int = 2048
    synthetic_active: float = 20.0
    synthetic_zipf: float = 0.6
    synthetic_noise: float = 0.015
    synthetic_offset_norm: float = 2.0
    synthetic_pool: int = 262_144  # training vectors generated once and re-shuffled every epoch
    shard_paths: list[str] = field(default_factory=list)  # files or globs: .safetensors / .npy / .pt
    shard_key: str | None = None  # tensor name inside .safetensors / .pt dict shards
    shuffle_buffer: int = 262_144  # vectors held in the RAM mixing buffer
    hf_model: str | None = None  # model name or local path (from_pretrained)
    hf_model_config: dict[str, Any] | None = None  # build a randomly initialised model from this config instead
    hf_layer: str | None = None  # dotted module name whose output is hooked, e.g. model.layers.16
    hf_tokens: str | None = None  # .npy / .bin(uint16) / .pt file of token ids
    hf_text_files: list[str] = field(default_factory=list)  # plain text, tokenised with hf_model's tokenizer
    hf_context: int = 256
    hf_batch_sequences: int = 16
    hf_skip_first_token: bool = True  # BOS/first-position activations are outliers
    # Several SAEs on one data stream (one LM forward for all): a list of {name, hf_layer, k, expansion_factor, ...}
    # (SAE_ENTRY_KEYS), each overriding the keys above for its SAE, trained in out_dir/<name>; [] = one SAE
    saes: list[dict[str, Any]] = field(default_factory=list)
    prefetch: str = "auto"  # read the next data window in a background thread: auto = on CUDA with data_source hf
    # --- runtime ---
    out_dir: str = "runs/sae"
    device: str = "auto"
    precision: str = "auto"  # auto = bf16 autocast on CUDA, fp32 on CPU
    threads: int | None = None  # torch CPU threads per process
    log_every: int = 20
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    eval_vectors: int = 65_536  # held-out vectors for the final metrics: synthetic (sampled apart), shards (their last
    # rows) and hf (the last token windows); shards and hf hold out at most a tenth of their data, never streamed
    plateau_patience: int = 0  # log intervals without relative FVU improvement before stopping; 0 = off
    plateau_min_delta: float = 0.01
    max_hours: float | None = None  # cumulative training wall time across resumes; stop (with checkpoint) past it
    stop_after_steps: int | None = None  # stop (with checkpoint, state 'stopped') at this step; for staged runs
    plot: bool = True

    # --- derived values ---
    def resolved_n_latents(self) -> int:
        assert self.d_in is not None, "d_in must be resolved first"
        return self.n_latents if self.n_latents is not None else self.d_in * self.expansion_factor

    def total_steps(self) -> int:
        return max(1, math.ceil(self.total_vectors / self.batch_size))

    def resolved_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        # 1/sqrt(n) scaling (Gao et al.) above 2048 latents; flat below, where it would give unstable rates
        return self.lr_base * math.sqrt(2**14 / max(self.resolved_n_latents(), 2048))

    def resolved_warmup(self) -> int:
        return self.warmup_steps if self.warmup_steps is not None else min(1000, max(1, self.total_steps() // 20))

    def resolved_k_aux(self) -> int:
        assert self.d_in is not None
        return self.k_aux if self.k_aux is not None else max(1, self.d_in // 2)

    def resolved_dead_window(self) -> int:
        if self.dead_window_vectors is not None:
            return self.dead_window_vectors
        return max(self.batch_size, min(10_000_000, self.total_vectors // 16))

    def seeds(self) -> tuple[int, int, int]:
        """(data, init, shuffle) seeds: distinct streams so the init can never replay the planted dictionary."""
        data = self.data_seed if self.data_seed is not None else self.seed
        init = self.init_seed if self.init_seed is not None else self.seed + 1000
        shuffle = self.shuffle_seed if self.shuffle_seed is not None else self.seed + 2000
        return data, init, shuffle

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # --- validation ---
    def validate(self) -> TrainConfig:
        _check_types(self)
        _choice(self, "architecture", ARCHITECTURES)
        _choice(self, "decode_impl", DECODE_IMPLS)
        _choice(self, "data_source", DATA_SOURCES)
        _choice(self, "b_dec_init", B_DEC_INITS)
        _choice(self, "device", DEVICES)
        _choice(self, "precision", PRECISIONS)
        _choice(self, "prefetch", PREFETCH)
        for key in (
            "expansion_factor",
            "k",
            "batch_size",
            "total_vectors",
            "log_every",
            "checkpoint_every",
            "keep_checkpoints",
            "batchtopk_candidates",
            "synthetic_features",
            "synthetic_pool",
            "shuffle_buffer",
            "hf_context",
            "hf_batch_sequences",
        ):
            _positive(self, key)
        for key in (
            "lr",
            "lr_base",
            "adam_eps",
            "max_hours",
            "synthetic_active",
            "n_latents",
            "k_aux",
            "d_in",
            "dead_window_vectors",
            "threads",
            "stop_after_steps",
        ):
            if getattr(self, key) is not None:
                _positive(self, key)
        for key in (
            "auxk_alpha",
            "synthetic_noise",
            "synthetic_offset_norm",
            "synthetic_zipf",
            "plateau_patience",
            "plateau_min_delta",
            "eval_vectors",
        ):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: must be >= 0, got {getattr(self, key)!r}")
        for key in ("adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be in [0, 1), got {getattr(self, key)!r}")
        if not 0 < self.decay_start <= 1:
            raise ConfigError(
                f"decay_start: must be in (0, 1] (fraction of steps before lr decay), got {self.decay_start!r}"
            )
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps: must be >= 0, got {self.warmup_steps!r}")
        if self.d_in is not None:
            n = self.resolved_n_latents()
            if self.k > n:
                raise ConfigError(f"k: must be <= the number of latents ({n}); lower k or raise expansion_factor")
        if self.data_source == "shards" and not self.shard_paths:
            raise ConfigError("shard_paths: data_source 'shards' needs at least one file or glob in shard_paths")
        if self.data_source == "hf":
            if (self.hf_model is None) == (self.hf_model_config is None):
                raise ConfigError(
                    "hf_model: data_source 'hf' needs exactly one of hf_model (name or path) or "
                    "hf_model_config (a config dict for a randomly initialised model)"
                )
            if not self.hf_layer and not (self.saes and all(e.get("hf_layer") for e in self.saes)):
                raise ConfigError(
                    "hf_layer: data_source 'hf' needs the dotted name of the hooked module, "
                    "e.g. model.layers.16 or transformer.h.1"
                )
            if (self.hf_tokens is None) == (not self.hf_text_files):
                raise ConfigError(
                    "hf_tokens: data_source 'hf' needs exactly one of hf_tokens (token-id file) or "
                    "hf_text_files (text tokenised with hf_model's tokenizer)"
                )
            if self.hf_text_files and self.hf_model is None:
                raise ConfigError(
                    "hf_text_files: tokenising text needs hf_model (its tokenizer); "
                    "give hf_tokens instead when using hf_model_config"
                )
        if self.saes:
            sae_configs(self)
        return self

    def layers(self) -> list[str]:
        """The hooked modules of an hf run, in first-use order (one per distinct hf_layer of its SAEs)."""
        return list(dict.fromkeys(str(member.hf_layer) for _, member in sae_configs(self)))


def _entry_value(key: str, value: Any) -> Any:
    """Through the fleet (Pulumi's engine) every integer arrives as a float: an int field gets its int back."""
    hint = _field_types()[key]
    if isinstance(value, float) and value.is_integer() and int in typing.get_args(hint) + (hint,):
        return int(value)
    return _coerce(key, value)


def _default_name(member: TrainConfig) -> str:
    width = f"n{member.n_latents}" if member.n_latents is not None else f"x{member.expansion_factor}"
    layer = f"{member.hf_layer}-" if member.hf_layer else ""
    return f"{layer}k{member.k}-{width}"


def sae_configs(cfg: TrainConfig) -> list[tuple[str, TrainConfig]]:
    """(name, config) of every SAE the run trains: itself ("" , out_dir as given) without `saes`, else one per entry,
    in out_dir/<name>, each validated (errors name the entry: `saes[1].k: ...`)."""
    if not cfg.saes:
        return [("", cfg)]
    out: list[tuple[str, TrainConfig]] = []
    for i, entry in enumerate(cfg.saes):
        where = f"saes[{i}]"
        unknown = sorted(set(entry) - set(SAE_ENTRY_KEYS))
        if unknown:
            shared = [key for key in unknown if key in _field_types()]
            hint = (
                f"{shared[0]} is the run's, shared by all its SAEs: set it at the top level"
                if shared
                else f"an entry may set {', '.join(SAE_ENTRY_KEYS)}"
            )
            raise ConfigError(f"{where}.{unknown[0]}: not a per-SAE key; {hint}")
        if "hf_layer" in entry and cfg.data_source != "hf":
            raise ConfigError(f"{where}.hf_layer: only data_source 'hf' hooks layers; drop it or use data_source hf")
        values = {key: _entry_value(key, value) for key, value in entry.items() if key != "name"}
        try:
            member = dataclasses.replace(cfg, saes=[], **values)
            _check_types(member)
            member.validate()
        except ConfigError as exc:
            raise ConfigError(f"{where}.{exc}") from None
        name = entry.get("name") or _default_name(member)
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise ConfigError(f"{where}.name: a directory name under out_dir (no '/', not hidden), got {name!r}")
        if name in (n for n, _ in out):
            raise ConfigError(f"{where}.name: {name!r} is already another entry's; give each entry its own name")
        out.append((name, dataclasses.replace(member, out_dir=str(Path(cfg.out_dir) / name))))
    return out


def _choice(cfg: TrainConfig, key: str, choices: tuple[str, ...]) -> None:
    if getattr(cfg, key) not in choices:
        raise ConfigError(f"{key}: must be one of {', '.join(choices)}; got {getattr(cfg, key)!r}")


def _positive(cfg: TrainConfig, key: str) -> None:
    value = getattr(cfg, key)
    if value is None or value <= 0:
        raise ConfigError(f"{key}: must be > 0, got {value!r}")


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if hint is Any:
        return True
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _check_types(cfg: TrainConfig) -> None:
    for key, hint in _field_types().items():
        value = getattr(cfg, key)
        if not _matches(value, hint):
            raise ConfigError(f"{key}: expected {_type_name(hint)}, got {value!r} ({type(value).__name__})")


def _coerce(key: str, value: Any) -> Any:
    """Int or numeric string -> float for float fields, a bare string -> one-item list for list fields."""
    if key == "hf_model_config" and isinstance(value, dict):
        # Through the fleet (Pulumi's engine) every integer arrives as a float; a model config wants its ints back.
        return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in value.items()}
    hint = _field_types()[key]
    is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = typing.get_args(hint) if is_union else (hint,)
    if float in args and isinstance(value, str):  # YAML reads 1e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            return value
    if float in args and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if any(typing.get_origin(a) is list for a in args) and isinstance(value, str):
        return [value]
    return value


def unknown_key_error(key: str) -> ConfigError:
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    close = difflib.get_close_matches(key, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f"; valid keys: {', '.join(names)}"
    return ConfigError(f"{key}: unknown config key{hint}")


def apply_overrides(cfg: TrainConfig, values: dict[str, Any]) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    changes = {}
    for raw_key, value in values.items():
        key = raw_key.replace("-", "_")
        if key not in names:
            raise unknown_key_error(key)
        changes[key] = _coerce(key, value)
    return dataclasses.replace(cfg, **changes)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config: file {str(path)!r} does not exist; pass --config PATH to a YAML file")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config: {path} must hold a mapping of key: value, got {type(loaded).__name__}")
    return loaded


def parse_cli_overrides(args: list[str]) -> dict[str, Any]:
    """Parse `--set key=value`, `--key value` and `--key=value` into a dict (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--set":
            if i + 1 >= len(args) or "=" not in args[i + 1]:
                raise ConfigError("--set: expects key=value, e.g. --set lr=1e-3")
            key, raw = args[i + 1].split("=", 1)
            i += 2
        elif arg.startswith("--") and "=" in arg:
            key, raw = arg[2:].split("=", 1)
            i += 1
        elif arg.startswith("--"):
            if i + 1 >= len(args):
                raise ConfigError(f"{arg[2:]}: missing value; write {arg} VALUE or --set {arg[2:]}=VALUE")
            key, raw = arg[2:], args[i + 1]
            i += 2
        else:
            raise ConfigError(f"{arg}: unexpected argument; overrides look like --key value or --set key=value")
        out[key.replace("-", "_")] = yaml.safe_load(raw) if raw != "" else None
    return out


def build_config(config_path: str | Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    values = load_yaml(config_path) if config_path else {}
    cfg = apply_overrides(TrainConfig(), values)
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    return cfg.validate()

"""`lambda-sae:training` (the trainer's config file, its overrides, the run's name, ports and timeouts) and
`lambda-sae:probe` (the PII probes after the run): what runs on the nodes (lambda_provider/fleet/config.py parses
the rest).

`training.cache` turns the run into `python -m training.cache_activations` (see `CacheConfig`).

A new training key: a field of `TrainingConfig`, its name in `parse_training`'s known keys and its read there, its
line in `SCHEMA_DOC` (config.py) and in README "Stack config", its tests in tests/fleet/test_config.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lambda_provider.fleet.config_reader import NAME_PATTERN, Reader
from training.changes import CACHE_MODULE

CACHE_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class CacheConfig:
    """`training.cache`: the run is `python -m training.cache_activations` (activations to shards), not the trainer."""

    shard_vectors: int = 262_144
    dtype: str = "auto"
    max_tokens: int | None = None

    def task(self) -> dict[str, Any]:
        """What TrainingRun's launcher runs instead of training.train (its TRAIN_MODULE and TRAIN_ARGS)."""
        args = ["--shard-vectors", str(self.shard_vectors), "--dtype", self.dtype]
        if self.max_tokens is not None:
            args += ["--max-tokens", str(self.max_tokens)]
        return {"module": CACHE_MODULE, "args": args}


@dataclass(frozen=True)
class TrainingConfig:
    config: str | None
    overrides: dict[str, Any] = field(default_factory=dict)
    run_name: str = "sae"
    allow_cpu: bool = False
    wait_minutes: float = 0.0
    master_port: int = 29500
    ready_timeout_seconds: float = 900.0
    launch_timeout_seconds: float = 900.0  # from the launch until every rank has taken its first step
    allow_mixed_architectures: bool = False
    file_values: dict[str, Any] = field(default_factory=dict)  # training.config as parsed here, once
    cache: CacheConfig | None = None  # set: the run caches activations instead of training an SAE

    def task(self) -> dict[str, Any] | None:
        return self.cache.task() if self.cache else None


@dataclass(frozen=True)
class ProbeConfig:
    """`python -m training.probe` on the head node once the run has finished (see training/README.md)."""

    enabled: bool = False
    data: str | None = None  # a held-out JSONL on the node (e.g. on the filesystem); default: the synthetic split
    layers: tuple[str, ...] = ()
    train_examples: int | None = None
    test_examples: int | None = None


def parse_training(r: Reader, raw: Any, repo_root: Path, emulator: bool, max_hours: float) -> TrainingConfig:
    m = r.mapping(
        raw,
        "training",
        {
            "config",
            "overrides",
            "runName",
            "allowCpu",
            "waitMinutes",
            "masterPort",
            "readyTimeoutSeconds",
            "launchTimeoutSeconds",
            "allowMixedArchitectures",
            "cache",
        },
    )
    config = r.string(m, "config", "training", required=False)
    file_values: dict[str, Any] = {}
    if config is not None:
        path = repo_root / config
        if Path(config).is_absolute() or not path.resolve().is_relative_to((repo_root / "training").resolve()):
            r.fail(
                "training.config",
                f"{config} is not under training/",
                "put the trainer config under "
                "training/configs/ (training/ is what gets copied to the nodes) or use training.overrides",
            )
        elif not path.is_file():
            r.fail(
                "training.config",
                f"{path} does not exist",
                "point it at a YAML file, e.g. training/configs/tiny-cpu.yaml",
            )
        else:
            file_values = _read_trainer_file(r, path)
    overrides = m.get("overrides") or {}
    if not isinstance(overrides, dict):
        r.fail("training.overrides", "expected a mapping", "write trainer keys as key: value (see training/config.py)")
        overrides = {}
    run_name = r.string(m, "runName", "training", required=False, default="sae") or "sae"
    if not NAME_PATTERN.match(run_name):
        r.fail("training.runName", f"{run_name!r} is not a valid run name", "lowercase letters, digits and '-'")
    allow_cpu = r.boolean(m, "allowCpu", "training", False)
    wait = r.number(m, "waitMinutes", "training", required=False, default=0.0, strict=False)
    port = r.number(m, "masterPort", "training", required=False, default=29500, integer=True, minimum=1024)
    ready = r.number(m, "readyTimeoutSeconds", "training", required=False, default=900.0)
    launch = r.number(m, "launchTimeoutSeconds", "training", required=False, default=900.0)
    mixed = r.boolean(m, "allowMixedArchitectures", "training", False)
    cache = _parse_cache(r, m.get("cache"))
    if not r.problems:
        _check_trainer_keys(r, file_values, overrides)
    if cache and not r.problems:
        _check_cache_source(r, {**file_values, **overrides})
    return TrainingConfig(
        config,
        dict(overrides),
        run_name,
        allow_cpu,
        float(wait),
        int(port),
        float(ready),
        float(launch),
        mixed,
        file_values,
        cache,
    )


def _parse_cache(r: Reader, raw: Any) -> CacheConfig | None:
    if raw is None or raw is False:
        return None
    if raw is True:
        return CacheConfig()
    if not isinstance(raw, dict):
        r.fail(
            "training.cache",
            f"expected true or a mapping, got {raw!r}",
            "set training.cache: true, or {shardVectors: N, dtype: auto, maxTokens: N}",
        )
        return None
    m = r.mapping(raw, "training.cache", {"shardVectors", "dtype", "maxTokens"})
    shard_vectors = r.number(m, "shardVectors", "training.cache", required=False, default=262_144, integer=True)
    max_tokens = r.number(m, "maxTokens", "training.cache", required=False, integer=True)
    dtype = r.string(m, "dtype", "training.cache", required=False, default="auto") or "auto"
    if dtype not in CACHE_DTYPES:
        r.fail("training.cache.dtype", f"{dtype!r} is not a cache dtype", f"use one of {', '.join(CACHE_DTYPES)}")
    return CacheConfig(int(shard_vectors), dtype, None if max_tokens is None else int(max_tokens))


def _check_cache_source(r: Reader, values: dict[str, Any]) -> None:
    from training.config import TrainConfig

    source = values.get("data_source", TrainConfig().data_source)
    if source != "hf":
        r.fail(
            "training.cache",
            f"a cache run reads activations from a hooked LM, but the trainer config's data_source is {source!r}",
            "set data_source: hf (and hf_model, hf_layer) in training.config or training.overrides, "
            "or remove training.cache",
        )


def _read_trainer_file(r: Reader, path: Path) -> dict[str, Any]:
    """training.config parsed (the one read of it: the fleet sends these values). The trainer reads it as one mapping
    of its keys; anything else fails here, not on the nodes."""
    fix = "make it a YAML mapping of trainer keys (key: value lines, see training/configs/tiny-cpu.yaml)"
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        r.fail("training.config", f"{path} is not valid YAML{line}: {getattr(exc, 'problem', None) or exc}", fix)
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        r.fail("training.config", f"cannot read {path}: {exc}", fix)
        return {}
    if loaded is not None and not isinstance(loaded, dict):
        r.fail("training.config", f"{path} holds a {type(loaded).__name__}, not a mapping of trainer keys", fix)
        return {}
    return dict(loaded or {})


def _check_trainer_keys(r: Reader, file_values: dict[str, Any], overrides: dict[str, Any]) -> None:
    from training.config import ConfigError, TrainConfig, apply_overrides

    try:  # what training.config.build_config does, on the values parsed above
        apply_overrides(apply_overrides(TrainConfig(), file_values), overrides).validate()
    except ConfigError as exc:
        r.fail(
            "training.overrides",
            f"the trainer rejects the config: {exc}",
            "fix that trainer key (the message names it); keys are the fields of training/config.py",
        )


def parse_probe(r: Reader, raw: Any, training: TrainingConfig) -> ProbeConfig:
    m = r.mapping(raw, "probe", {"enabled", "data", "layers", "trainExamples", "testExamples"})
    enabled = r.boolean(m, "enabled", "probe", False)
    layers = m.get("layers") or []
    if not isinstance(layers, list) or not all(isinstance(x, (str, int)) for x in layers):
        r.fail(
            "probe.layers",
            f"expected a list of hf_layer names or numbers, got {layers!r}",
            "set probe.layers: [model.layers.19] or remove it (every SAE of the run)",
        )
        layers = []
    train_n = r.number(m, "trainExamples", "probe", required=False, integer=True)
    test_n = r.number(m, "testExamples", "probe", required=False, integer=True)
    if enabled and training.cache:
        r.fail(
            "probe.enabled",
            "a cache run (training.cache) trains no SAE for the probe to read",
            "set probe.enabled: false for the cache run, and enable it on the shards run that trains on the cache",
        )
    elif enabled and training.wait_minutes <= 0:
        r.fail(
            "probe.enabled",
            "the probe runs on the finished run, but training.waitMinutes is 0 (up does not "
            "wait for the run to finish)",
            "set training.waitMinutes to the minutes the run needs, or set "
            "probe.enabled: false and run `python -m training.probe --sae RUN_DIR` on the head node later",
        )
    return ProbeConfig(
        enabled, r.string(m, "data", "probe", required=False), tuple(str(x) for x in layers), train_n, test_n
    )

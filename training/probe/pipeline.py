"""The whole probe evaluation: synthetic train split -> tokens -> activations at each SAE's layer -> raw / SAE /
binarised features -> per-class probes -> metrics on the held-out split (synthetic test split or the user's JSONL),
next to the regex baseline on the same split."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.config import TrainConfig
from training.outputs import load_sae
from training.probe import features, report
from training.probe.generate import CLASSES, LOCALES, TEMPLATES, Example, generate, read_jsonl
from training.probe.metrics import choose_thresholds, evaluate
from training.probe.probes import ProbeSettings, fit, predict
from training.probe.regex_baseline import regex_scores
from training.probe.tokens import TokenTable, select, tokenize
from training.sae import SparseAutoencoder


@dataclass
class ProbeOptions:
    train_examples: int = 2000
    test_examples: int = 600
    seed: int = 0
    threshold: float = 0.5  # the span threshold when thresholds are not tuned
    tune_thresholds: bool = True  # per class, on a validation fifth of the training split
    min_tokens: int = 1  # multi-token evidence: a predicted span needs this many tokens above the threshold
    max_batch_tokens: int = 8192  # padded positions per forward pass (bounds activation memory)
    probe: ProbeSettings = field(default_factory=ProbeSettings)


def find_runs(path: str | Path, layers: list[str] | None = None) -> list[Path]:
    """`path` itself when it holds sae_config.json, else its sub-directories that do (one SAE per layer), kept to
    `layers` (hf_layer names, or their trailing numbers: 19 for model.layers.19) when given."""
    root = Path(path)
    runs = [root] if (root / "sae_config.json").is_file() else sorted(p.parent for p in root.glob("*/sae_config.json"))
    if not runs:
        raise FileNotFoundError(
            f"--sae {root}: no sae_config.json there or in its sub-directories; give a finished "
            "run's out_dir (or a directory of runs, one per layer)"
        )
    if layers:
        wanted = set(layers)
        runs = [r for r in runs if _layer_of(r) in wanted or _layer_of(r).rsplit(".", 1)[-1] in wanted]
        if not runs:
            raise ValueError(
                f"--layers {' '.join(layers)}: no SAE under {root} is at those layers; drop --layers or "
                "name an hf_layer of one of its runs"
            )
    return runs


def _sae_config(run: Path) -> dict[str, Any]:
    return json.loads((run / "sae_config.json").read_text())


def _layer_of(run: Path) -> str:
    return str(_sae_config(run).get("hf_layer") or "")


def train_config(run: Path) -> TrainConfig:
    config = _sae_config(run)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in (config.get("train_config") or {}).items() if k in known})
    if cfg.data_source != "hf" or not cfg.hf_layer:
        raise ValueError(
            f"{run}: this SAE was trained on data_source {cfg.data_source!r}, not on a model's "
            "activations (data_source: hf with hf_model and hf_layer); probe an SAE of an hf run"
        )
    return cfg


def _model_key(cfg: TrainConfig) -> str:
    return json.dumps([cfg.hf_model, cfg.hf_model_config, cfg.seeds()[0]], sort_keys=True)


def validation_split(train: TokenTable) -> tuple[TokenTable, np.ndarray, TokenTable, np.ndarray]:
    """Every fifth training example is held back to choose the thresholds; the probes fit on the rest."""
    val_examples = list(range(0, len(train.examples), 5))
    fit_examples = [e for e in range(len(train.examples)) if e % 5]
    fit_table, fit_rows = select(train, fit_examples)
    val_table, val_rows = select(train, val_examples)
    return fit_table, fit_rows, val_table, val_rows


def probe_layer(
    train: TokenTable,
    test: TokenTable,
    train_acts: np.ndarray,
    test_acts: np.ndarray,
    sae: SparseAutoencoder,
    options: ProbeOptions,
    regex: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Metrics of the three probes (and the regex baseline, when given) for one layer's activations. Each probe
    fits on 4/5 of the training split; its per-class thresholds are chosen on the other fifth (or fixed at
    `options.threshold` when `options.tune_thresholds` is off); the test split is only scored."""
    fit_table, fit_rows, val_table, val_rows = validation_split(train)
    train_sets = features.feature_sets(train_acts, sae)
    test_sets = features.feature_sets(test_acts, sae)
    methods: dict[str, Any] = {}
    for kind in features.FEATURE_KINDS:
        started = time.monotonic()
        models = fit(kind, train_sets[kind][fit_rows], fit_table.labels, len(CLASSES), options.probe)
        thresholds: float | np.ndarray = options.threshold
        if options.tune_thresholds:
            thresholds = choose_thresholds(val_table, predict(models, train_sets[kind][val_rows]), options.min_tokens)
        methods[kind] = evaluate(test, predict(models, test_sets[kind]), thresholds, options.min_tokens)
        methods[kind]["fit_seconds"] = round(time.monotonic() - started, 2)
    if regex is not None:
        methods["regex"] = regex
    codes = test_sets["sae"]
    return {
        "methods": methods,
        "sae": {
            "d_in": sae.d_in,
            "d_sae": sae.n_latents,
            "k": sae.k,
            "architecture": sae.architecture,
            "test_l0": round(codes.nnz / max(codes.shape[0], 1), 2),
        },
    }


def build_report(
    sae_info: dict[str, Any],
    train: TokenTable,
    test: TokenTable,
    test_source: str,
    layers: dict[str, Any],
    options: ProbeOptions,
) -> dict[str, Any]:
    result = {
        "sae": sae_info,
        "data": {
            "train_examples": len(train.examples),
            "train_tokens": train.n_tokens,
            "test_examples": len(test.examples),
            "test_tokens": test.n_tokens,
            "test_source": test_source,
            "train_locales": sorted({e.locale for e in train.examples}),
            "test_locales": sorted({e.locale for e in test.examples}),
            "train_templates": sorted({e.template for e in train.examples}),
            "test_templates": sorted({e.template for e in test.examples}),
            "classes": list(CLASSES),
        },
        "settings": {
            **{k: v for k, v in dataclasses.asdict(options).items() if k != "probe"},
            "probe": dataclasses.asdict(options.probe),
        },
        "columns": [c[0] for c in report.COLUMNS],
        "layers": layers,
    }
    result["headline_span_f1"] = report.headline(result)
    return result


def run(
    sae_path: str | Path,
    data: str | Path | None = None,
    layers: list[str] | None = None,
    options: ProbeOptions | None = None,
    out_dir: str | Path | None = None,
    device: str | None = None,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Evaluate every SAE found at `sae_path`; write the report to `out_dir` (default: `sae_path`)."""
    options = options or ProbeOptions()
    runs = find_runs(sae_path, layers)
    configs = {run: train_config(run) for run in runs}
    if len({_model_key(cfg) for cfg in configs.values()}) > 1:
        raise ValueError(
            f"--sae {sae_path}: the runs there were trained on different models; probe one model at a "
            "time (give one run, or --layers to pick runs of one model)"
        )
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cfg = next(iter(configs.values()))
    model, tokenizer = features.load_model(cfg, dev)
    train_examples = generate(options.train_examples, "train", options.seed)
    test_examples: list[Example] = (
        read_jsonl(data) if data is not None else generate(options.test_examples, "test", options.seed)
    )
    train, test = tokenize(train_examples, tokenizer), tokenize(test_examples, tokenizer)
    layer_names = [c.hf_layer or "" for c in configs.values()]
    train_acts = features.layer_activations(model, layer_names, train, dev, options.max_batch_tokens)
    test_acts = features.layer_activations(model, layer_names, test, dev, options.max_batch_tokens)
    del model
    regex = evaluate(test, regex_scores(test), options.threshold, options.min_tokens)
    results = {}
    for run_dir, layer in zip(runs, layer_names, strict=True):
        sae = load_sae(run_dir, device=dev)
        results[layer] = probe_layer(train, test, train_acts[layer], test_acts[layer], sae, options, regex)
        results[layer]["run_dir"] = str(run_dir)
    model_name = cfg.hf_model or f"random {(cfg.hf_model_config or {}).get('model_type')} (hf_model_config)"
    sae_info = {"hf_model": model_name, "sae_path": str(sae_path), "device": dev.type}
    test_source = str(data) if data is not None else f"synthetic test split ({', '.join(LOCALES['test'])})"
    result = build_report(sae_info, train, test, test_source, results, options)
    result["data"]["template_counts"] = {
        split: {lang: len(t) for lang, t in by_lang.items()} for split, by_lang in TEMPLATES.items()
    }
    return result, report.write(result, Path(out_dir or (runs[0] if len(runs) == 1 else sae_path)))

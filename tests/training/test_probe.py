"""PII probes: the offline generator, token labels, the regex validators, probes on planted activations, and the
whole pipeline on the tiny random GPT-2 (generate -> activations -> SAE codes -> probes -> report)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from training.config import build_config
from training.probe.__main__ import main as probe_main
from training.probe.generate import (
    ALL_LOCALES,
    CLASSES,
    LOCALES,
    SPLITS,
    TEMPLATES,
    Example,
    Span,
    generate,
    read_jsonl,
    write_jsonl,
)
from training.probe.metrics import evaluate
from training.probe.pipeline import ProbeOptions, build_report, find_runs, probe_layer
from training.probe.regex_baseline import find_spans, iban_ok, luhn_ok, regex_scores
from training.probe.report import COLUMNS, METHODS, write
from training.probe.tokens import ByteTokenizer, tokenize
from training.sae import SparseAutoencoder
from training.trainer import Trainer


def test_generator_is_deterministic_per_seed() -> None:
    first = [e.to_json() for e in generate(60, "train", seed=3)]
    assert first == [e.to_json() for e in generate(60, "train", seed=3)]
    assert first != [e.to_json() for e in generate(60, "train", seed=4)]


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("locale", ALL_LOCALES)
def test_spans_are_exact_in_every_locale(split: str, locale: str) -> None:
    examples = generate(40, split, seed=0, locales=[locale])
    for example in examples:
        assert [example.text[s.start : s.end] for s in example.spans] == example.meta["values"]
    assert all(s.end > s.start for e in examples for s in e.spans)


def test_every_class_occurs_in_each_split() -> None:
    for split in SPLITS:
        labels = {s.label for e in generate(400, split, seed=0) for s in e.spans}
        assert labels == set(CLASSES), split


def test_train_and_test_templates_are_disjoint() -> None:
    train = {t for by_lang in [TEMPLATES["train"]] for ts in by_lang.values() for t in ts}
    test = {t for ts in TEMPLATES["test"].values() for t in ts}
    assert not train & test
    assert {e.template for e in generate(200, "train")}.isdisjoint({e.template for e in generate(200, "test")})


def test_locales_are_disjoint_except_japanese() -> None:
    assert set(LOCALES["train"]) & set(LOCALES["test"]) == {"ja_JP"}


def test_token_labels_follow_the_offsets() -> None:
    example = Example("山田です。a@b.jp", [Span(0, 2, "person_name"), Span(5, 11, "email")])
    table = tokenize([example], ByteTokenizer())
    assert len(table.labels) == len(example.text.encode())  # every byte is scored, the prefix is not
    name_bytes = table.labels[:6]  # two 3-byte characters
    assert name_bytes.tolist() == [CLASSES.index("person_name") + 1] * 6
    assert table.labels[6:15].tolist() == [0] * 9
    assert table.labels[15:].tolist() == [CLASSES.index("email") + 1] * 6


def test_validators() -> None:
    assert luhn_ok("4111 1111 1111 1111")
    assert not luhn_ok("4111 1111 1111 1112")
    assert iban_ok("DE89 3704 0044 0532 0130 00")
    assert not iban_ok("DE89 3704 0044 0532 0130 01")


def test_regex_finds_validated_values_only() -> None:
    text = "card 4111-1111-1111-1111, not 4111-1111-1111-1112; mail a.b@example.org from 10.0.0.1"
    labels = [(text[s:e], label) for s, e, label in find_spans(text)]
    assert ("4111-1111-1111-1111", "credit_card") in labels
    assert ("a.b@example.org", "email") in labels
    assert ("10.0.0.1", "ip_address") in labels
    assert not any(value == "4111-1111-1111-1112" for value, _ in labels)


def test_user_jsonl_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    write_jsonl(generate(5, "test"), path)
    assert [e.to_json()["spans"] for e in read_jsonl(path)] == [e.to_json()["spans"] for e in generate(5, "test")]
    path.write_text(json.dumps({"text": "hi Bob", "spans": [{"start": 3, "end": 6, "label": "name"}]}) + "\n")
    with pytest.raises(ValueError, match=r"mine.jsonl:1: label 'name' is not a known class; use one of"):
        read_jsonl(path)


def _planted(examples: list[Example], directions: torch.Tensor, seed: int) -> tuple:
    """Token table and activations: noise everywhere, plus the class's direction on PII tokens."""
    table = tokenize(examples, ByteTokenizer())
    gen = torch.Generator().manual_seed(seed)
    acts = 0.3 * torch.randn(table.n_tokens, directions.shape[1], generator=gen)
    pii = torch.as_tensor(table.labels) > 0
    acts[pii] += 2.0 * directions[torch.as_tensor(table.labels)[pii] - 1]
    return table, acts.numpy()


def test_sae_probe_finds_planted_pii_directions(tmp_path: Path) -> None:
    d_in, n_latents = 48, 96
    gen = torch.Generator().manual_seed(0)
    sae = SparseAutoencoder(d_in, n_latents, k=6, generator=gen)
    directions = sae.W_dec.detach()[: len(CLASSES)].clone()  # the SAE has a latent for each planted direction
    train, train_acts = _planted(generate(200, "train"), directions, seed=1)
    test, test_acts = _planted(generate(120, "test"), directions, seed=2)
    options = ProbeOptions()
    regex = evaluate(test, regex_scores(test))
    layer = probe_layer(train, test, train_acts, test_acts, sae, options, regex)
    assert layer["methods"]["sae"]["span_micro"]["f1"] >= 0.95
    report = build_report({"hf_model": "planted"}, train, test, "planted", {"planted.0": layer}, options)
    paths = write(report, tmp_path)
    header = next(line for line in paths["markdown"].read_text().splitlines() if line.startswith("| layer |"))
    assert all(f" {name} |" in header for name, *_ in COLUMNS)
    saved = json.loads(paths["json"].read_text())
    methods = saved["layers"]["planted.0"]["methods"]
    assert sorted(methods) == sorted(METHODS)
    assert all(key in methods[m][f"{level}_{avg}"] for m in METHODS for _, level, avg, key in COLUMNS)
    assert paths["png"].stat().st_size > 0


def _tiny_gpt2_run(tmp_path: Path) -> Path:
    """An SAE trained on the tiny random GPT-2's block 0, fed byte tokens of generated text."""
    text = "\n".join(e.text for e in generate(300, "train", seed=9))
    tokens = np.frombuffer(text.encode(), dtype=np.uint8).astype(np.int64)
    np.save(tmp_path / "tokens.npy", tokens)
    model_config = {
        "model_type": "gpt2",
        "n_layer": 2,
        "n_embd": 32,
        "n_head": 2,
        "vocab_size": 256,
        "n_positions": 512,
        "bos_token_id": 10,
        "eos_token_id": 10,
    }
    cfg = build_config(
        None,
        dict(
            data_source="hf",
            hf_model_config=model_config,
            hf_layer="transformer.h.0",
            hf_tokens=str(tmp_path / "tokens.npy"),
            hf_context=64,
            hf_batch_sequences=8,
            expansion_factor=4,
            k=4,
            batch_size=252,
            total_vectors=252 * 40,
            shuffle_buffer=1008,
            eval_vectors=504,
            log_every=20,
            checkpoint_every=100,
            threads=1,
            out_dir=str(tmp_path / "run"),
            plot=False,
        ),
    )
    Trainer(cfg).run()
    return tmp_path / "run"


def test_tiny_gpt2_pipeline_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    run = _tiny_gpt2_run(tmp_path)
    held_out = tmp_path / "mine.jsonl"  # a user's own held-out text, read the same way
    write_jsonl(generate(80, "test", seed=5), held_out)
    args = ["--sae", str(run), "--data", str(held_out), "--train-examples", "200", "--device", "cpu"]
    assert probe_main(args) == 0
    assert time.monotonic() - started < 60
    report = json.loads((run / "probe_report.json").read_text())
    assert sorted(report["headline_span_f1"]["transformer.h.0"]) == sorted(METHODS)
    assert report["data"]["test_source"] == str(held_out)
    assert report["data"]["test_examples"] == 80
    assert report["layers"]["transformer.h.0"]["sae"]["d_sae"] == 128
    assert (run / "probe_pr.png").is_file()
    assert "| transformer.h.0 | 128 latents, k=4 | logreg on SAE codes |" in capsys.readouterr().out


def test_layers_pick_runs_of_a_directory(tmp_path: Path) -> None:
    for layer in ("model.layers.3", "model.layers.19"):
        (tmp_path / layer).mkdir()
        (tmp_path / layer / "sae_config.json").write_text(json.dumps({"hf_layer": layer}))
    assert [p.name for p in find_runs(tmp_path)] == ["model.layers.19", "model.layers.3"]
    assert [p.name for p in find_runs(tmp_path, ["19"])] == ["model.layers.19"]
    with pytest.raises(ValueError, match=r"--layers 7: no SAE under .* is at those layers"):
        find_runs(tmp_path, ["7"])


def test_cli_names_the_fix_for_a_missing_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert probe_main(["--sae", str(tmp_path / "nowhere")]) == 2
    assert "no sae_config.json there or in its sub-directories" in capsys.readouterr().err

"""The fleet's probe stage (stack key lambda-sae:probe): refused at preview without a wait on the run; on the
emulator, `pulumi up` trains an SAE on the tiny random GPT-2, probes it on the head node, writes the report next to
the SAE on the filesystem and puts the span F1s in the stack outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lambda_provider.fleet.config import FleetConfigError, parse_fleet_config
from tests.fleet.fleet_support import A10, Fleet, fleet_on_emulator, stack_config
from training.probe.generate import generate
from training.probe.report import METHODS

REPO = Path(__file__).resolve().parents[2]
EMULATOR_URL = "http://127.0.0.1:8790/api/v1"


def test_probe_without_a_wait_is_refused_with_the_fix() -> None:
    raw = stack_config([A10], count=1, waitMinutes=0)
    raw["probe"] = {"enabled": True}
    with pytest.raises(FleetConfigError) as info:
        parse_fleet_config(raw, api_url=EMULATOR_URL, repo_root=REPO)
    assert "probe.enabled: the probe runs on the finished run, but training.waitMinutes is 0" in str(info.value)
    assert "set training.waitMinutes to the minutes the run needs" in str(info.value)


def test_probe_keys_parse() -> None:
    raw = stack_config([A10], count=1)
    raw["probe"] = {"enabled": True, "layers": ["transformer.h.0"], "testExamples": 50}
    probe = parse_fleet_config(raw, api_url=EMULATOR_URL, repo_root=REPO).probe
    assert probe.enabled is True
    assert probe.layers == (("transformer.h.0",))
    assert probe.test_examples == 50


@pytest.fixture
def fleet(tmp_path: Path) -> Any:
    with fleet_on_emulator(tmp_path, filesystem="sae-probe") as fleet:
        yield fleet


def test_fleet_probe_stage_puts_the_f1s_in_the_outputs(fleet: Fleet, tmp_path: Path) -> None:
    text = "\n".join(e.text for e in generate(200, "train", seed=9))
    tokens = tmp_path / "tokens.npy"  # the emulated nodes share this host's filesystem
    np.save(tokens, np.frombuffer(text.encode(), dtype=np.uint8).astype(np.int64))
    # The model config comes from a YAML file: integers in stack config overrides reach the trainer as floats.
    raw = stack_config(
        [A10],
        count=1,
        run_name="probe",
        filesystem="sae-probe",
        config="training/probe/tiny-gpt2.yaml",
        overrides={"hf_tokens": str(tokens), "total_vectors": 7560, "eval_vectors": 504},
    )
    raw["probe"] = {"enabled": True, "trainExamples": 120, "testExamples": 60}
    fleet.configure(raw)
    result = fleet.up_result()
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    outputs = json.loads(fleet.project.run("stack", "output", "--json", "--show-secrets").stdout)
    probe = outputs["training"]["probe"]
    assert sorted(probe["span_f1"]["transformer.h.0"]) == sorted(METHODS)
    assert probe["error"] is None
    report = json.loads((fleet.run_dir("probe") / "probe_report.json").read_text())
    assert report["data"]["test_examples"] == 60

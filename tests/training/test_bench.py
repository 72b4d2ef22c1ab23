"""The shape benchmark (the one a GPU runs at 4096x32768k64) runs on CPU at a small shape, so it cannot rot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.bench import main as bench_main
from training.bench_shapes import parse_shape
from training.config import ConfigError


def test_a_small_shape_reports_both_paths_and_the_share_of_the_encoder_peak(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    argv = ["--device", "cpu", "--shape", "32x256k8", "--vectors", "4096", "--batch", "256", "--cache-rows", "4096"]
    assert bench_main([*argv, "--threads", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [(r["impl"], r["device"], r["precision"]) for r in rows] == [
        ("sparse", "cpu", "fp32"),
        ("dense", "cpu", "fp32"),
    ]
    assert all(r["vectors_per_second"] > 0 for r in rows), [r["vectors_per_second"] for r in rows]
    assert all(0 < r["share_of_encoder_peak"] < 1 for r in rows), [r["share_of_encoder_peak"] for r in rows]


def test_a_shape_reads_as_d_in_latents_and_k() -> None:
    assert parse_shape("4096x65536k64") == (4096, 65536, 64)


def test_a_bad_shape_names_the_flag_and_the_form() -> None:
    with pytest.raises(ConfigError, match=r"^--shape: '4096x64' is not D_INxN_LATENTSkK, e.g. 4096x32768k64$"):
        parse_shape("4096x64")

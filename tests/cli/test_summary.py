"""The summary `up` ends with: the probe stage's span F1s (the shape the fleet's `probe` NodeStep puts into the
`training` output, see lambda_provider/fleet/component.py `_probe`)."""

from __future__ import annotations

from typing import Any

from lambda_provider.cli.summary import summary_lines

OUTPUTS: dict[str, Any] = {
    "target": "emulator",
    "nodes": [],
    "hourly_cost_usd": 1.29,
    "max_hours": 1,
    "training": {
        "state": "finished",
        "step": 146,
        "total_steps": 146,
        "probe": {
            "span_f1": {"transformer.h.0": {"raw": 0.31, "sae": 0.3, "sae_binary": 0.24, "regex": 0.61}},
            "report": "/lambda/nfs/sae-dev/runs/tiny-cpu/probe_report.md",
            "error": None,
        },
    },
}


def test_the_summary_gives_the_probe_span_f1s_per_layer() -> None:
    lines = summary_lines("dev", OUTPUTS)
    assert (
        "  probe span F1 (transformer.h.0): raw 0.31, sae 0.3, sae_binary 0.24, regex 0.61 "
        "(report /lambda/nfs/sae-dev/runs/tiny-cpu/probe_report.md)"
    ) in lines


def test_a_failed_probe_stage_is_in_the_summary() -> None:
    failed = {
        **OUTPUTS,
        "training": {
            **OUTPUTS["training"],
            "probe": {"span_f1": None, "report": None, "error": "node node-0: probe failed"},
        },
    }
    assert "  probe failed: node node-0: probe failed" in summary_lines("dev", failed)


def test_the_summary_shows_the_latest_metrics_as_the_live_view_does() -> None:
    running = {
        **OUTPUTS,
        "training": {
            "state": "running",
            "latest_metrics": {
                "step": 50,
                "fvu": 1.17371,
                "l0": 16.0,
                "dead_fraction": 0.0,
                "vectors_per_second": 76262.2921,
            },
        },
    }
    expected = "  metrics: step 50, FVU 1.1737, L0 16, dead 0.00%, 76,262 vec/s"
    assert expected in summary_lines("dev", running)


def test_the_summary_of_a_cache_run_says_what_it_cached_and_how_to_train_on_it() -> None:
    cache_run = {
        **OUTPUTS,
        "filesystem": {"run_dir": "/lambda/nfs/sae-cache/runs/acts"},
        "training": {"state": "finished", "cache": {"vectors": 5040, "manifests": ["manifest.json"]}},
    }
    expected = (
        "  cache: 5,040 activation vectors in /lambda/nfs/sae-cache/runs/acts (manifest.json); train on it with "
        "`data_source: shards, shard_paths: [/lambda/nfs/sae-cache/runs/acts]`"
    )
    assert expected in summary_lines("dev", cache_run)

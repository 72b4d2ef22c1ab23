"""The fast tier: `pytest -m unit` (`make test-fast`) runs the tests that need no emulator, no SSH, no `pulumi` CLI
and no multi-process torch.

Tests are marked here, by file or (where a file mixes tiers) by test, so the other folders need no edits. The mark
is held to its word: a unit test that asks for an emulator fixture fails at collection, and one that starts
`pulumi`, `ssh`, `torchrun` or the emulator as a process fails when it tries.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

UNIT_FILES = frozenset(
    {
        "tests/cli/test_summary.py",
        "tests/emulator/test_contract_spec.py",
        "tests/emulator/test_routes.py",
        "tests/emulator/test_validation.py",
        "tests/fleet/test_config.py",
        "tests/fleet/test_data_config.py",
        "tests/fleet/test_failure_attribution.py",
        "tests/fleet/test_fleet_nodes_plan.py",
        "tests/gitops/test_domain_unit.py",
        "tests/gitops/test_plan_unit.py",
        "tests/gitops/test_policies_unit.py",
        "tests/gitops/test_workflows.py",
        "tests/providers/test_models.py",
        "tests/providers/test_provider_base.py",
        "tests/providers/test_retry.py",
        "tests/test_lint.py",
        "tests/test_references.py",
        "tests/test_tiers.py",
        "tests/training/test_changes.py",
        "tests/training/test_training_config.py",
        "tests/training/test_training_cpu_topk.py",
        "tests/training/test_training_data.py",
        "tests/training/test_training_sae.py",
    }
)
# Single tests in files whose other tests need the emulator or several processes (node ids without parameters).
UNIT_TESTS = frozenset(
    {
        "tests/emulator/test_contract.py::test_recorded_live_responses_validate_against_the_schemas_used_for_the_emulator",
        "tests/emulator/test_contract.py::test_recorded_2026_catalogue_is_the_default_catalogue",
        "tests/providers/test_client.py::test_rate_limiter_spaces_launches_more_than_other_requests",
        "tests/providers/test_rate_limits.py::test_the_next_launch_is_spaced_from_the_previous_send_with_the_margin",
        "tests/providers/test_rate_limits.py::test_a_request_goes_out_before_a_launch_waiting_for_its_slot",
        "tests/training/test_training_elastic.py::test_a_failing_relaunch_leaves_a_finished_run_as_it_was",
        "tests/training/test_training_elastic.py::test_a_finished_run_relaunched_trains_on_only_when_its_total_grew",
        "tests/training/test_training_runs.py::test_stopped_and_resumed_run_matches_uninterrupted",
        "tests/training/test_training_runs.py::test_bf16_autocast_path_trains",
        "tests/training/test_training_runs.py::test_plateau_and_max_hours_stop_early",
        "tests/training/test_training_runs.py::test_shard_run_reports_metrics_on_held_out_rows",
        "tests/training/test_training_runs.py::test_an_exported_sae_loads_back_and_encodes_as_trained",
    }
)
# Tests that need none of those either but take several seconds each (a longer training run, an interpreter start
# with torch): they stay in `make test`, so `make test-fast` keeps under 30 s on 2 cores.
SLOW_TESTS = frozenset(
    {
        "tests/training/test_training_config.py::test_train_cli_rejects_bad_config_with_exit_2",  # ~6 s
        "tests/training/test_training_runs.py::test_planted_features_are_recovered",  # ~9 s
        "tests/training/test_training_runs.py::test_hf_hook_on_tiny_random_model",  # ~4 s
    }
)
UNIT_PATHS = UNIT_FILES | {t.split("::", 1)[0] for t in UNIT_TESTS}
# Fixtures that start the emulator, a provider host or a stack: a test asking for one is not a unit test.
INFRA_FIXTURES = frozenset(
    {
        "emulator",
        "emulator_session",
        "emulator_handle",
        "api",
        "engine",
        "client",
        "stack",
        "limited",
        "gitops_emulator",
        "deployed_fleet",
        "fleet_stack",
        "fleet",
        "node",
        "preview",
    }
)
FORBIDDEN_PROGRAMS = frozenset({"pulumi", "ssh", "scp", "sshd", "torchrun"})
FORBIDDEN_MODULES = ("lambda_provider.emulator", "torch.distributed.run")


def is_unit(nodeid: str) -> bool:
    test = nodeid.split("[", 1)[0]
    return test not in SLOW_TESTS and (nodeid.split("::", 1)[0] in UNIT_FILES or test in UNIT_TESTS)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under `-m unit` alone, skip importing the files with no unit test (half the time of the fast loop)."""
    if config.option.markexpr != "unit" or not collection_path.name.startswith("test_"):
        return None
    if collection_path.suffix != ".py":
        return None
    return collection_path.relative_to(config.rootpath).as_posix() not in UNIT_PATHS or None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not is_unit(item.nodeid):
            continue
        item.add_marker(pytest.mark.unit)
        infra = sorted(INFRA_FIXTURES & set(getattr(item, "fixturenames", ())))
        if infra:
            raise pytest.UsageError(
                f"{item.nodeid} is in the unit tier (tests/tiers.py) but uses {infra}: drop it "
                "from UNIT_FILES/UNIT_TESTS there, or split the file"
            )


def _forbidden(args: Any) -> str | None:
    if isinstance(args, str):
        argv: Iterable[Any] = shlex.split(args)
    else:
        argv = args if isinstance(args, list | tuple) else [args]
    words = [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in argv]
    for word in words:
        if os.path.basename(word) in FORBIDDEN_PROGRAMS:
            return os.path.basename(word)
    return next((m for m in FORBIDDEN_MODULES if m in words), None)


class _UnitPopen(subprocess.Popen):
    def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
        what = _forbidden(args)
        if what is not None:
            raise AssertionError(
                f"a unit test started {what} ({args!r}); move the test out of the unit tier (tests/tiers.py)"
            )
        super().__init__(args, *rest, **kwargs)


@pytest.fixture(autouse=True)
def unit_stays_unit(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("unit") is not None:
        monkeypatch.setattr(subprocess, "Popen", _UnitPopen)

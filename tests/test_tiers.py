"""The unit tier's guard (tests/tiers.py): it refuses the processes a unit test must not start, and only those."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.pulumi_support import REPO_ROOT
from tests.tiers import SLOW_TESTS, UNIT_FILES, UNIT_TESTS, is_unit


@pytest.mark.parametrize(
    "argv",
    [
        ["ssh", "-p", "22", "ubuntu@127.0.0.1", "true"],
        ["/opt/pulumi/bin/pulumi", "preview"],
        [sys.executable, "-m", "lambda_provider.emulator", "--port", "0"],
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "x.py"],
        "torchrun --nproc-per-node=2 x.py",
    ],
)
def test_a_unit_test_cannot_start_the_emulator_ssh_pulumi_or_torchrun(argv: list[str] | str) -> None:
    with pytest.raises(AssertionError, match="move the test out of the unit tier"):
        subprocess.run(argv, shell=isinstance(argv, str), capture_output=True, check=False, timeout=5)


def test_a_unit_test_may_start_a_plain_python() -> None:
    assert subprocess.run([sys.executable, "-c", "pass"], timeout=30, check=False).returncode == 0


def test_this_file_is_in_the_unit_tier() -> None:
    assert is_unit("tests/test_tiers.py::test_this_file_is_in_the_unit_tier")


def test_every_listed_unit_file_exists() -> None:
    listed = UNIT_FILES | {t.split("::", 1)[0] for t in UNIT_TESTS | SLOW_TESTS}
    assert sorted(p for p in listed if not (REPO_ROOT / p).is_file()) == []


def test_a_slow_test_in_a_unit_file_stays_out_of_the_tier() -> None:
    assert not is_unit("tests/training/test_training_config.py::test_train_cli_rejects_bad_config_with_exit_2")


def test_every_listed_test_is_defined_in_its_file() -> None:
    missing = []
    for test in sorted(UNIT_TESTS | SLOW_TESTS):
        path, name = test.split("::", 1)
        if f"def {name}(" not in (REPO_ROOT / path).read_text():
            missing.append(test)
    assert missing == []

"""Shared pytest fixtures: a real Lambda Cloud emulator process.

`emulator` gives each test a clean emulator (one process per test session, wiped through its reset endpoint before
every test): rate limits off, time_scale 0.003 (a GH200 is `active` ~1 s after launch). Tests that need their own
process (restart, rate limits from the start, a config file) use `lambda_provider.emulator.testing.running_emulator`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from lambda_provider.emulator.testing import EmulatorHandle, running_emulator
from tests.tiers import (  # noqa: F401 (the unit tier: tests/tiers.py)
    pytest_collection_modifyitems,
    pytest_ignore_collect,
    unit_stays_unit,
)

EMULATOR_TIME_SCALE = 0.003


@pytest.fixture(scope="session")
def emulator_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    with running_emulator(tmp_path_factory.mktemp("lambda-emulator"), time_scale=EMULATOR_TIME_SCALE) as handle:
        yield handle


@pytest.fixture
def emulator(emulator_session: EmulatorHandle) -> Iterator[EmulatorHandle]:
    if not emulator_session.running:  # a test killed it: bring it back on the same data dir
        emulator_session.start()
    emulator_session.reset()
    yield emulator_session


@pytest.fixture(autouse=True)
def current_event_loop() -> None:
    """Pulumi's resource constructors need a current event loop; an `asyncio.run()` in an earlier test leaves none."""
    try:
        if not asyncio.get_event_loop_policy().get_event_loop().is_closed():
            return
    except RuntimeError:
        pass
    asyncio.set_event_loop(asyncio.new_event_loop())

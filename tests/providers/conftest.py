"""Fixtures for the provider tests: one fast emulator per module (real HTTP over loopback), reset per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lambda_provider.emulator.testing import EmulatorHandle, running_emulator
from lambda_provider.resources import lookups
from tests.providers.emulator_api import Api
from tests.providers.host_fixtures import assert_no_api_key_leak
from tests.providers.host_harness import Engine, ProviderHost

API_KEY = "secret_sae-provider-test_5f3c9e1d2b7a4c60.8e1f2d3c4b5a69780f1e2d3c"
TIME_SCALE = 0.005
# Terminated records stay listed for the whole test, so tests can count every launch that ever happened.
EMULATOR_CONFIG: dict[str, Any] = {"lifecycle": {"terminated_retention_seconds": 1_000_000}}


@pytest.fixture(scope="module")
def emulator_handle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    with running_emulator(
        tmp_path_factory.mktemp("emulator"), time_scale=TIME_SCALE, config=EMULATOR_CONFIG, api_key=API_KEY
    ) as handle:
        yield handle


@pytest.fixture
def api(emulator_handle: EmulatorHandle) -> Iterator[Api]:
    api = Api(emulator_handle)
    emulator_handle.reset()
    emulator_handle.set_rate_limits(False)
    lookups.clear()
    yield api
    api.clear_faults()


@pytest.fixture
def engine(api: Api) -> Iterator[Engine]:
    """A provider host configured with this emulator's stack config, and an engine driving it."""
    with ProviderHost() as host:
        reply = host.configure(api.stack_config())
        assert reply.acceptSecrets is False  # the host gets plaintext config: it must not echo it anywhere
        engine = Engine(host)
        yield engine
        assert_no_api_key_leak(api, engine)

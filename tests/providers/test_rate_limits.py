"""Pacing against the emulator's real per-account rate limits (on here, and scaled only 10x so they bite)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from lambda_provider.client import LaunchRequest, RateLimited, RateLimiter, RetryPolicy
from lambda_provider.client.ratelimit import LAUNCH_MARGIN
from lambda_provider.emulator.testing import EmulatorHandle, running_emulator
from lambda_provider.resources import Filesystem, SshKey
from tests.providers.conftest import API_KEY, EMULATOR_CONFIG
from tests.providers.emulator_api import Api
from tests.providers.host_fixtures import PUBLIC_KEY
from tests.providers.host_harness import Engine, ProviderHost, registrations

SCALE = 0.1  # emulator: 10 requests/s (burst 5) and 1 launch per 1.2 s


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    with running_emulator(
        tmp_path_factory.mktemp("limited"), time_scale=SCALE, rate_limits=True, config=EMULATOR_CONFIG, api_key=API_KEY
    ) as handle:
        yield handle


@pytest.fixture
def api(limited: EmulatorHandle) -> Api:
    limited.reset()
    limited.set_rate_limits(True)  # also refills the buckets
    return Api(limited)


def test_unpaced_client_trips_the_limit_and_the_paced_one_does_not(api: Api) -> None:
    unpaced = api.client(limiter=RateLimiter(0, 0), retry=RetryPolicy(attempts=1))
    with pytest.raises(RateLimited):
        for _ in range(50):
            unpaced.regions.list()
    api.emulator.set_rate_limits(True)
    paced = api.client(
        limiter=RateLimiter(min_request_interval=1.0 * SCALE, min_launch_interval=12.0 * SCALE),
        retry=RetryPolicy(attempts=1),
    )  # any 429 would surface
    for _ in range(15):
        paced.regions.list()
    paced.ssh_keys.create("k", PUBLIC_KEY)
    launched = [paced.instances.launch(LaunchRequest("us-east-1", "gpu_1x_a10", "k")) for _ in range(2)]
    paced.instances.terminate(launched)


def test_back_to_back_launches_without_launch_pacing_draw_a_429(api: Api) -> None:
    client = api.client(limiter=RateLimiter(1.0 * SCALE, 0), retry=RetryPolicy(attempts=1))
    client.ssh_keys.create("k", PUBLIC_KEY)
    first = client.instances.launch(LaunchRequest("us-east-1", "gpu_1x_a10", "k"))
    with pytest.raises(RateLimited):
        client.instances.launch(LaunchRequest("us-east-1", "gpu_1x_a10", "k"))
    client.instances.terminate([first])


def test_provider_pacing_keeps_a_whole_up_and_destroy_free_of_429s(api: Api) -> None:
    def define() -> list:
        return [SshKey("key", public_key=PUBLIC_KEY), Filesystem("data", region="us-east-1")]

    regs = registrations(define)
    config = api.stack_config(
        **{
            "lambda:minRequestInterval": str(1.0 * SCALE),
            "lambda:minLaunchInterval": str(12.0 * SCALE),
            "lambda:retryAttempts": "1",
            "lambda:rateLimitBudget": "0",
        }
    )  # any 429 would surface
    with ProviderHost() as host:
        host.configure(config)
        engine = Engine(host)
        for _ in range(2):  # create, then check/diff again ("same")
            for reg in regs.values():
                engine.up(reg)
        engine.destroy()
    assert api.client(limiter=RateLimiter(1.0 * SCALE, 0)).ssh_keys.list() == []


def test_the_next_launch_is_spaced_from_the_previous_send_with_the_margin() -> None:
    limiter = RateLimiter(min_request_interval=0, min_launch_interval=0.5)
    limiter.acquire(launch=True)
    time.sleep(0.3)  # the first launch's answer is still out: it does not delay the next send
    assert limiter.acquire(launch=True) == pytest.approx(0.5 * (1 + LAUNCH_MARGIN) - 0.3, abs=0.05)


def test_a_request_goes_out_before_a_launch_waiting_for_its_slot() -> None:
    limiter = RateLimiter(min_request_interval=0.05, min_launch_interval=1.0)
    limiter.acquire(launch=True)
    started = time.monotonic()
    waiter = threading.Thread(target=limiter.acquire, kwargs={"launch": True})  # takes the slot 1.1 s ahead
    waiter.start()
    time.sleep(0.1)
    waited = limiter.acquire()
    waiter.join()
    assert waited < 0.05, f"a listing queued {waited:.2f} s behind the next launch's slot"
    assert time.monotonic() - started == pytest.approx(1.0 * (1 + LAUNCH_MARGIN), abs=0.1)

"""The REST client against the emulator over loopback: typed errors, retries, and the never-blind launch."""

from __future__ import annotations

import time

import pytest

from lambda_provider.client import (
    AmbiguousLaunch,
    FilesystemInUse,
    InsufficientCapacity,
    InvalidApiKey,
    LambdaClient,
    LaunchRequest,
    NotFound,
    RateLimited,
    RateLimiter,
    RetryPolicy,
    ServerError,
)
from tests.providers.emulator_api import Api
from tests.providers.host_fixtures import PUBLIC_KEY

OWNER = {"pulumi-project": "sae", "pulumi-stack": "test", "pulumi-resource": "node"}


def _launch_request(**overrides: object) -> LaunchRequest:
    fields = {
        "region_name": "us-east-1",
        "instance_type_name": "gpu_1x_a10",
        "ssh_key_name": "k",
        "name": "node",
        "tags": dict(OWNER),
    }
    fields.update(overrides)
    return LaunchRequest(**fields)  # type: ignore[arg-type]


@pytest.fixture
def client(api: Api) -> LambdaClient:
    c = api.client()
    c.ssh_keys.create("k", PUBLIC_KEY)
    return c


def test_typed_errors_carry_code_message_and_suggestion(api: Api, client: LambdaClient) -> None:
    with pytest.raises(InvalidApiKey) as bad_key:
        LambdaClient("secret_wrong", api.base_url, limiter=RateLimiter(0, 0)).instances.list()
    assert bad_key.value.status == 401
    assert bad_key.value.code == "global/invalid-api-key"
    assert bad_key.value.suggestion

    with pytest.raises(NotFound, match="gpu_nope"):
        client.instances.launch(_launch_request(instance_type_name="gpu_nope"))
    with pytest.raises(NotFound):
        client.instances.get("0" * 32)

    api.set_capacity("gpu_1x_a10", "us-east-1", 0)
    with pytest.raises(InsufficientCapacity) as no_capacity:
        client.instances.launch(_launch_request(), owner_tags=OWNER)
    assert no_capacity.value.status == 400
    assert len(api.all_instances()) == 0

    fs = client.filesystems.create("data", "us-west-1")
    inst_id = client.instances.launch(_launch_request(region_name="us-west-1", file_system_names=["data"]))
    with pytest.raises(FilesystemInUse):
        client.filesystems.delete(fs.id)
    client.instances.terminate([inst_id])


def test_idempotent_calls_retry_through_429_and_5xx(api: Api, client: LambdaClient) -> None:
    storm = api.add_fault(action="rate_limit", method="GET", path="^/instances$", count=3)
    html_5xx = api.add_fault(action="error", method="GET", path="^/instance-types$", status=502, body="html", count=2)
    assert client.instances.list() == []
    assert "gpu_1x_a10" in client.instance_types.list()
    assert api.fault(storm["id"])["fired"] == 3
    assert api.fault(html_5xx["id"])["fired"] == 2


def test_retries_give_up_with_the_typed_error(api: Api) -> None:
    client = api.client(retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02))
    rule = api.add_fault(action="error", method="GET", path="^/instances$", status=503, body="text")
    with pytest.raises(ServerError, match="non-JSON"):
        client.instances.list()
    assert api.fault(rule["id"])["fired"] == 3
    api.clear_faults()
    api.add_fault(action="rate_limit", method="GET", path="^/regions$")
    with pytest.raises(RateLimited):
        client.regions.list()


def test_429s_are_retried_past_the_attempts_until_the_budget_is_spent(api: Api) -> None:
    client = api.client(retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02, rate_limit_budget=5.0))
    storm = api.add_fault(action="rate_limit", method="GET", path="^/regions$", count=8)
    assert client.regions.list()
    assert api.fault(storm["id"])["fired"] == 8
    api.add_fault(action="rate_limit", method="GET", path="^/regions$")  # for good: the budget ends it
    short = api.client(retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02, rate_limit_budget=0.3))
    started = time.monotonic()
    with pytest.raises(RateLimited):
        short.regions.list()
    assert time.monotonic() - started < 2.0


def test_a_rejected_launch_is_not_retried(api: Api, client: LambdaClient) -> None:
    api.set_capacity("gpu_1x_a10", "us-east-1", 0)
    launches = api.add_fault(action="delay", method="POST", path="launch", delay_seconds=0)
    with pytest.raises(InsufficientCapacity):
        client.instances.launch(_launch_request(), owner_tags=OWNER)
    assert api.fault(launches["id"])["fired"] == 1


def test_a_429_on_launch_is_retried_because_nothing_happened(api: Api, client: LambdaClient) -> None:
    api.add_fault(action="rate_limit", method="POST", path="launch", count=2)
    instance_id = client.instances.launch(_launch_request(), owner_tags=OWNER)
    assert [i["id"] for i in api.all_instances()] == [instance_id]


def test_dropped_launch_response_adopts_the_tagged_instance(api: Api, client: LambdaClient) -> None:
    rule = api.add_fault(action="drop_response", method="POST", path="launch", count=1)
    instance_id = client.instances.launch(_launch_request(), owner_tags=OWNER)
    assert api.fault(rule["id"])["fired"] == 1
    launched = api.all_instances()
    assert [i["id"] for i in launched] == [instance_id], "adopted, not launched twice"


def test_ambiguous_launch_without_tags_is_never_resent(api: Api, client: LambdaClient) -> None:
    rule = api.add_fault(action="drop_response", method="POST", path="launch", count=1)
    with pytest.raises(AmbiguousLaunch, match="not retrying"):
        client.instances.launch(_launch_request(tags={}))
    assert api.fault(rule["id"])["fired"] == 1
    assert len(api.all_instances()) == 1  # the server did launch; the caller was told it cannot know


def test_5xx_before_the_launch_happened_relaunches_once_after_listing(api: Api, client: LambdaClient) -> None:
    # The edge answered 503 without forwarding: listing finds nothing, so one more launch is safe.
    rule = api.add_fault(action="error", method="POST", path="launch", status=503, count=1)
    instance_id = client.instances.launch(_launch_request(), owner_tags=OWNER)
    assert api.fault(rule["id"])["fired"] == 1
    assert [i["id"] for i in api.all_instances()] == [instance_id]


def test_launch_gives_up_after_repeated_unknown_outcomes(api: Api, client: LambdaClient) -> None:
    api.add_fault(action="error", method="POST", path="launch", status=500)
    with pytest.raises(AmbiguousLaunch, match="run `pulumi up` again once the API answers"):
        client.instances.launch(_launch_request(), owner_tags=OWNER)
    assert api.all_instances() == []


def test_api_key_never_in_reprs_or_errors(api: Api) -> None:
    client = api.client()
    assert api.api_key not in repr(client)
    assert api.api_key not in repr(client.transport)
    api.add_fault(action="error", method="GET", path="^/instances$", status=500)
    with pytest.raises(ServerError) as exc:
        api.client(retry=RetryPolicy(attempts=1)).instances.list()
    assert api.api_key not in str(exc.value)


def test_rate_limiter_spaces_launches_more_than_other_requests() -> None:
    limiter = RateLimiter(min_request_interval=0.0, min_launch_interval=0.3)
    assert limiter.acquire(launch=True) == 0.0
    assert limiter.acquire() == 0.0  # ordinary requests are not held back by the launch budget
    assert limiter.acquire(launch=True) > 0.1  # the second launch waited for its slot

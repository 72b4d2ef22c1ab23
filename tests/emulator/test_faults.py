"""Fault injection through the control API, and rate limits."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

from lambda_provider.emulator.testing import running_emulator

from .conftest import CheckedApi


def test_injected_errors_json_and_html_then_recovery(api: CheckedApi) -> None:
    api.emu.inject_fault(action="error", status=503, path="^/instances$", count=1)
    api.emu.inject_fault(action="error", status=502, body="html", path="^/instances$", count=1)
    first, second, third = (api("GET", "/instances") for _ in range(3))
    assert first.status == 503
    assert first.body["error"]["code"] == "provider/internal-unavailable"
    assert second.status == 502
    assert second.body.startswith("<html>")
    assert second.headers["Content-Type"] == "text/html"
    assert third.status == 200
    assert third.body == {"data": []}
    api.emu.inject_fault(action="rate_limit", body="html", method="GET", path="^/ssh-keys$", count=1)
    banned = api("GET", "/ssh-keys")
    assert banned.status == 429
    assert "banned you temporarily" in banned.body
    assert api("GET", "/ssh-keys").status == 200
    never = api.emu.inject_fault(action="error", probability=0.0)
    assert api("GET", "/regions").status == 200
    assert next(r for r in api.emu.control("GET", "/faults")["rules"] if r["id"] == never["id"])["fired"] == 0


def _expect_no_answer(api: CheckedApi, method: str, path: str, body: dict | None = None) -> None:
    """Send one raw request (the client helpers would retry or raise their own error): the connection must close
    without an HTTP answer."""
    url = urlsplit(api.emu.base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    headers = {"Authorization": f"Bearer {api.emu.api_key}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, url.path + path, json.dumps(body) if body is not None else None, headers)
    try:
        conn.getresponse()
        raise AssertionError(f"{method} {path} was answered; the fault should have closed the connection")
    except (http.client.RemoteDisconnected, ConnectionResetError):
        pass
    finally:
        conn.close()


def test_slow_response_still_answers(api: CheckedApi) -> None:
    api.emu.inject_fault(action="delay", delay_seconds=0.3, path="^/regions$", count=1)
    started = time.monotonic()
    assert api("GET", "/regions").status == 200
    assert time.monotonic() - started >= 0.3  # the delay happened (a behaviour check, not a speed target)


def test_launch_that_commits_but_drops_the_response(api: CheckedApi) -> None:
    api.add_key()
    api.emu.inject_fault(action="drop_response", method="POST", path="^/instance-operations/launch$", count=1)
    body = {
        "region_name": "us-east-3",
        "instance_type_name": "gpu_1x_gh200",
        "ssh_key_names": ["test-key"],
        "name": "lost",
    }
    _expect_no_answer(api, "POST", "/instance-operations/launch", body)
    listed = api.ok("GET", "/instances")
    assert [i["name"] for i in listed] == ["lost"]  # billed although the client never got an id


def test_disconnect_and_bad_rules(api: CheckedApi) -> None:
    api.emu.inject_fault(action="disconnect", path="^/images$", count=1)
    _expect_no_answer(api, "GET", "/images")
    response = api.emu.control_response("POST", "/faults", {"action": "explode"})
    assert response.status == 400
    assert "action must be one of" in response.body["error"]["message"]
    assert api.emu.api("GET", "/images").status == 200


def test_capacity_change_at_runtime(api: CheckedApi) -> None:
    api.add_key()
    api.emu.set_capacity("gpu_1x_a100", "us-west-1", 1)
    regions = api.ok("GET", "/instance-types")["gpu_1x_a100"]["regions_with_capacity_available"]
    assert [r["name"] for r in regions] == ["us-west-1"]
    api.launch(instance_type="gpu_1x_a100", region="us-west-1")
    assert api.ok("GET", "/instance-types")["gpu_1x_a100"]["regions_with_capacity_available"] == []


def test_rate_limits_per_account_and_launch(tmp_path: Path) -> None:
    # time_scale 1: live limits (burst 5, ~1 request/s, 1 launch per 12 s).
    with running_emulator(tmp_path / "emu", time_scale=1.0, rate_limits=True) as emu:
        statuses = [emu.api("GET", "/instance-types").status for _ in range(8)]
        assert statuses[:5] == [200] * 5
        assert 429 in statuses[5:]
        limited = next(r for r in (emu.api("GET", "/regions") for _ in range(3)) if r.status == 429)
        assert limited.body["error"]["code"] == "global/rate-limited"
        other = emu.add_account()  # another account has its own budget
        assert emu.api("POST", "/ssh-keys", {"name": "k", "public_key": _PUBLIC_KEY}, api_key=other).status == 200
        launch = {"region_name": "us-east-3", "instance_type_name": "gpu_1x_gh200", "ssh_key_names": ["k"]}
        assert emu.api("POST", "/instance-operations/launch", launch, api_key=other).status == 200
        second = emu.api("POST", "/instance-operations/launch", launch, api_key=other)
        assert second.status == 429  # 1 launch per 12 s even with request tokens left
        emu.set_rate_limits(False)
        assert all(emu.api("GET", "/regions").status == 200 for _ in range(10))


_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICN+lJwsONkwrdsSnQsu1ydUkIuIg5oOC+Eslvmtt60T noname"

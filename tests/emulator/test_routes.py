"""One route table serves the public API and the control API, and it routes every operation of the spec but the
tickets and fabric ones (README "Not emulated"). No emulator: this reads the table itself."""

from __future__ import annotations

import re

import pytest

from lambda_provider.emulator import httpd  # noqa: F401 -- importing the server registers every route
from lambda_provider.emulator.router import resolve, routes

from .contract import spec

NOT_EMULATED = ("/api/v1/tickets", "/api/v1/fabric")
METHODS = ("get", "post", "put", "patch", "delete")


def _operations() -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, operations in spec()["paths"].items()
        if not path.startswith(NOT_EMULATED)
        for method in operations
        if method in METHODS
    ]


def test_every_spec_operation_but_tickets_and_fabric_has_a_public_route() -> None:
    unrouted = []
    for method, template in _operations():
        path = re.sub(r"\{[^/]+\}", "0123456789abcdef0123456789abcdef", template)
        try:
            route, _ = resolve(method, path)
        except Exception:
            unrouted.append(f"{method} {template}")
            continue
        if route.scope != "api":
            unrouted.append(f"{method} {template} (routed as {route.scope})")
    assert unrouted == []


def test_the_public_routes_are_only_the_spec_operations() -> None:
    declared = {(m, t.removeprefix("/api/v1")) for m, t in _operations()}
    public = {(r.method, r.path) for r in routes() if r.scope == "api"}
    assert public - declared == set()


def test_the_control_api_is_in_the_same_table() -> None:
    assert resolve("PUT", "/_emulator/capacity")[0].scope == "control"


@pytest.mark.parametrize("path", ["/_emulator/instances/abc/status", "/_emulator/faults/abc"])
def test_control_paths_take_their_id_from_the_path(path: str) -> None:
    method = "POST" if path.endswith("status") else "DELETE"
    assert resolve(method, path)[1] == {"id": "abc"}

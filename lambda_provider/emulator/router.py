"""The one route table of the emulator: the public API (`/api/v1/...`) and the control API (`/_emulator/...`).

Route modules (responses/) register with `@api(method, path)` or `@control(method, path)`; `{name}` in a path is
one path segment, handed to the handler as `request.params[name]`. A public route runs after fault injection,
auth and rate limits, and its payload goes out as `{"data": ...}`; a control route needs no auth and its payload
goes out as it is. Routes match in registration order (`/firewall-rulesets/global` before `/{id}`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from . import errors

if TYPE_CHECKING:
    from .app import EmulatorApp
    from .models import Account

API_PREFIX = "/api/v1"
CONTROL_PREFIX = "/_emulator"
Scope = Literal["api", "control"]


@dataclass(frozen=True)
class Request:
    app: EmulatorApp
    account: Account | None  # the caller's account on public routes; None on control routes
    params: dict[str, str]
    body: Any  # parsed JSON (None when empty); on public GET routes, the query parameters as a dict
    now: float

    @property
    def caller(self) -> Account:
        assert self.account is not None, "a public route runs with an authenticated account"
        return self.account


Handler = Callable[[Request], Any]


@dataclass(frozen=True)
class Route:
    scope: Scope
    method: str
    path: str  # the template after the prefix, e.g. /instances/{id}
    pattern: re.Pattern[str]
    handler: Handler
    envelope_extra: dict[str, Any] = field(default_factory=dict)  # top-level keys beside "data"


class MethodNotAllowed(Exception):
    def __init__(self, allowed: list[str]) -> None:
        super().__init__("method not allowed")
        self.allowed = allowed


_ROUTES: list[Route] = []


def _register(
    scope: Scope, method: str, path: str, envelope_extra: dict[str, Any] | None = None
) -> Callable[[Handler], Handler]:
    prefix = API_PREFIX if scope == "api" else CONTROL_PREFIX
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(prefix + path))

    def register(handler: Handler) -> Handler:
        _ROUTES.append(Route(scope, method, path, re.compile(f"^{regex}$"), handler, dict(envelope_extra or {})))
        return handler

    return register


def api(method: str, path: str, *, envelope_extra: dict[str, Any] | None = None) -> Callable[[Handler], Handler]:
    """A public API route (`path` after /api/v1)."""
    return _register("api", method, path, envelope_extra)


def control(method: str, path: str) -> Callable[[Handler], Handler]:
    """A control API route (`path` after /_emulator)."""
    return _register("control", method, path)


def scope_of(path: str) -> Scope | None:
    """Which API a request path belongs to, by prefix; None for neither."""
    if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
        return "control"
    if path.startswith(API_PREFIX + "/"):
        return "api"
    return None


def resolve(method: str, path: str) -> tuple[Route, dict[str, str]]:
    """The route for `method` on the full request path (a trailing slash ignored). MethodNotAllowed when the path
    exists with other methods; 404 otherwise (`global/not-found`; control paths say which route is missing)."""
    path = path.rstrip("/") or "/"
    allowed = []
    for candidate in _ROUTES:
        match = candidate.pattern.match(path)
        if match:
            if candidate.method == method:
                return candidate, match.groupdict()
            allowed.append(candidate.method)
    if allowed:
        raise MethodNotAllowed(sorted(set(allowed)))
    if scope_of(path) == "control":
        raise errors.ApiError(404, "global/not-found", f"No control route {method} {path}.")
    raise errors.not_found_route()


def routes() -> list[Route]:
    return list(_ROUTES)

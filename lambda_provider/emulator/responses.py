"""Routes of the public API (`/api/v1/...`): request -> `CloudState` call -> `data` payload.

Each handler gets the app, the caller's account, the path match and the parsed JSON body (for GET: the query
parameters as a dict), and returns the payload
that the server wraps as `{"data": ...}`, or raises `ApiError`. Auth, rate limits and faults happen before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncssh

from . import errors, validation
from .catalog import image_to_api
from .models import Account

if TYPE_CHECKING:
    from .server import EmulatorApp

Handler = Callable[["EmulatorApp", Account, re.Match[str], Any], Any]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


_ROUTES: list[Route] = []


def route(method: str, path: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _ROUTES.append(Route(method, re.compile(f"^{path}$"), handler))
        return handler

    return register


class MethodNotAllowed(Exception):
    def __init__(self, allowed: list[str]) -> None:
        super().__init__("method not allowed")
        self.allowed = allowed


def resolve(method: str, api_path: str) -> tuple[Handler, re.Match[str]]:
    """Find the handler; MethodNotAllowed when the path exists with other methods, else 404 global/not-found."""
    allowed = []
    for candidate in _ROUTES:
        match = candidate.pattern.match(api_path)
        if match:
            if candidate.method == method:
                return candidate.handler, match
            allowed.append(candidate.method)
    if allowed:
        raise MethodNotAllowed(sorted(set(allowed)))
    raise errors.not_found_route()


_ID = r"(?P<id>[^/]+)"


# ---------------------------------------------------------------------------------------------- catalogue
@route("GET", "/instance-types")
def list_instance_types(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    return app.state.instance_types_api()


@route("GET", "/regions")
def list_regions(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    return [app.catalog.region_api(r) for r in app.catalog.regions]


@route("GET", "/images")
def list_images(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    return [image_to_api(i, app.catalog) for i in app.catalog.images]


# ---------------------------------------------------------------------------------------------- instances
@route("GET", "/instances")
def list_instances(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    # `cluster_id` filters to 1-Click Cluster members; the emulator has no clusters, so a filter matches nothing.
    instances = app.state.list_instances(account, app.now())
    return [] if isinstance(body, dict) and body.get("cluster_id") else instances


@route("GET", f"/instances/{_ID}")
def get_instance(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    return app.state.get_instance(account, match["id"], app.now())


@route("POST", f"/instances/{_ID}")
def rename_instance(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    body = validation.require_object(body)
    name = validation.string_field(body, "name", required=True, max_len=64)
    assert name is not None
    return app.state.rename_instance(account, match["id"], name, app.now())


@route("POST", "/instance-operations/launch")
def launch(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    doc = app.state.launch(account, validation.require_object(body), app.now())
    if app.hang_new_boots is not None:
        app.state.control_hang_boot(doc["id"], app.hang_new_boots)
    return {"instance_ids": [doc["id"]]}


@route("POST", "/instance-operations/terminate")
def terminate(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    ids = validation.check_ids(validation.require_object(body))
    terminated = app.state.terminate(account, ids, app.now())
    app.wake_reconciler()
    return {"terminated_instances": terminated}


@route("POST", "/instance-operations/restart")
def restart(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    ids = validation.check_ids(validation.require_object(body))
    restarted = app.state.restart(account, ids, app.now())
    app.wake_reconciler()
    return {"restarted_instances": restarted}


# ---------------------------------------------------------------------------------------------- SSH keys
@route("GET", "/ssh-keys")
def list_ssh_keys(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    return app.state.list_ssh_keys(account)


@route("POST", "/ssh-keys")
def add_ssh_key(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    body = validation.require_object(body)
    name = validation.string_field(body, "name", required=True, min_len=1, max_len=64)
    public_key = validation.string_field(body, "public_key", required=False, min_len=1, max_len=4096)
    assert name is not None
    private_pem = None
    if public_key is None:
        # Server-side generation returns an RSA PEM private key, as the spec's example (../shared/lambda-cloud/NOTES.md
        # §3.5).
        key = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
        private_pem = key.export_private_key("pkcs1-pem").decode()
        public_key = key.export_public_key("openssh").decode().strip()
    else:
        public_key = public_key.strip()
        try:
            asyncssh.import_public_key(public_key)
        except (asyncssh.KeyImportError, ValueError):
            raise errors.invalid_parameters(
                "Invalid public key.", "Send an OpenSSH public key line such as 'ssh-ed25519 AAAA... comment'."
            ) from None
    created = app.state.add_ssh_key(account, name, public_key)
    if private_pem is not None:
        created["private_key"] = private_pem
    return created


@route("DELETE", f"/ssh-keys/{_ID}")
def delete_ssh_key(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    app.state.delete_ssh_key(account, match["id"])
    return {}


# ---------------------------------------------------------------------------------------------- filesystems
# The list is spelled /file-systems, create and delete /filesystems (../shared/lambda-cloud/NOTES.md §3.6); POST
# /file-systems is a 405.
@route("GET", "/file-systems")
def list_filesystems(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    sizes = {fs_id: app.layout.filesystem_bytes_used(fs_id) for fs_id in app.state.filesystem_ids(account)}
    return app.state.list_filesystems(account, sizes)


@route("POST", "/filesystems")
def create_filesystem(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    body = validation.require_object(body)
    name = validation.string_field(body, "name", required=True, min_len=1, max_len=60)
    region = validation.string_field(body, "region", required=True)
    assert name is not None and region is not None
    if not validation.FILESYSTEM_NAME_PATTERN.match(name):
        raise errors.invalid_parameters(
            f"name: String should match pattern '{validation.FILESYSTEM_NAME_PATTERN.pattern}'",
            "Start with a letter; use letters, digits and '-'.",
        )
    created = app.state.create_filesystem(account, name, region)
    app.layout.create_filesystem(created["id"])
    return created


@route("DELETE", f"/filesystems/{_ID}")
def delete_filesystem(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    app.state.delete_filesystem(account, match["id"])
    app.layout.delete_filesystem(match["id"])
    return {"deleted_ids": [match["id"]]}


# ---------------------------------------------------------------------------------------------- firewall
@route("GET", "/firewall-rules")
def list_firewall_rules(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    return app.state.global_rules(account)


@route("PUT", "/firewall-rules")
def set_firewall_rules(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    body = validation.require_object(body)
    return app.state.set_global_rules(account, validation.check_firewall_rules(body.get("data"), "data"))


@route("GET", "/firewall-rulesets")
def list_rulesets(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    return app.state.list_rulesets(account)


@route("POST", "/firewall-rulesets")
def create_ruleset(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    body = validation.require_object(body)
    name = validation.string_field(body, "name", required=True, max_len=64)
    region = validation.string_field(body, "region", required=True)
    rules = validation.check_firewall_rules(body.get("rules"))
    assert name is not None and region is not None
    return app.state.create_ruleset(account, name, region, rules)


@route("GET", "/firewall-rulesets/global")
def get_global_ruleset(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    return {"id": "global", "name": "Default Workspace Global Rules", "rules": app.state.global_rules(account)}


@route("PATCH", "/firewall-rulesets/global")
def patch_global_ruleset(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    body = validation.require_object(body)
    if body.get("rules") is not None:
        app.state.set_global_rules(account, validation.check_firewall_rules(body["rules"]))
    return get_global_ruleset(app, account, match, body)


@route("GET", f"/firewall-rulesets/{_ID}")
def get_ruleset(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    return app.state.get_ruleset(account, match["id"])


@route("PATCH", f"/firewall-rulesets/{_ID}")
def patch_ruleset(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    body = validation.require_object(body)
    name = validation.string_field(body, "name", required=False, max_len=64)
    rules = validation.check_firewall_rules(body["rules"]) if body.get("rules") is not None else None
    return app.state.update_ruleset(account, match["id"], name, rules)


@route("DELETE", f"/firewall-rulesets/{_ID}")
def delete_ruleset(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    app.state.delete_ruleset(account, match["id"])
    return {}


# ---------------------------------------------------------------------------------------------- audit events
@route("GET", "/audit-events")
def list_audit_events(app: EmulatorApp, account: Account, match: re.Match[str], body: Any) -> Any:
    # Not recorded by the emulator: an empty last page. The server adds the top-level page_token.
    return []

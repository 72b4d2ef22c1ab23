"""Control API under `/_emulator/` (no auth, loopback only): faults, capacity, instance states, reset.

GET    /_emulator/health                         {"ok": true, "time_scale": ..., "api_url": ...}
GET    /_emulator/state                          every instance (all accounts) with emulator internals
POST   /_emulator/reset                          forget all resources, faults, capacity changes, rate buckets
POST   /_emulator/accounts                       new account -> {"account_id", "api_key"}
GET    /_emulator/faults                         active fault rules
POST   /_emulator/faults                         add a rule (see faults.py) -> the rule with its id
DELETE /_emulator/faults                         remove all rules;  DELETE /_emulator/faults/<id>: one rule
PUT    /_emulator/capacity                       {"instance_type", "region", "available"}: launchable count now
PUT    /_emulator/rate-limits                    {"enabled": bool}
POST   /_emulator/instances/<id>/status          {"status": "unhealthy" | "preempted" | "active"}
POST   /_emulator/instances/<id>/boot            {"hang": "ip" | "no-ip" | null}: boot never finishes / resumes
PUT    /_emulator/boot                           {"hang": "ip" | "no-ip" | null}: applies to every later launch
GET    /_emulator/instances/<id>                 host paths (root, home, filesystem dirs) and internals
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from . import errors

if TYPE_CHECKING:
    from .server import EmulatorApp


def handle_control(app: EmulatorApp, method: str, path: str, body: Any) -> tuple[int, Any]:
    body = body if isinstance(body, dict) else {}
    state = app.state
    if method == "GET" and path == "/health":
        return 200, {"ok": True, "time_scale": app.time_scale, "api_url": app.api_url}
    if method == "GET" and path == "/stats":
        return 200, app.stats_snapshot()
    if method == "GET" and path == "/state":
        return 200, {"instances": state.all_instance_docs()}
    if method == "POST" and path == "/reset":
        app.reset()
        return 200, {"ok": True}
    if method == "POST" and path == "/accounts":
        account_id, key = state.create_account()
        return 200, {"account_id": account_id, "api_key": key}
    if path == "/faults":
        if method == "GET":
            return 200, {"rules": app.faults.rules()}
        if method == "POST":
            return 200, app.faults.add(body).to_dict()
        if method == "DELETE":
            app.faults.clear()
            return 200, {"ok": True}
    match = re.fullmatch(r"/faults/(?P<id>[^/]+)", path)
    if match and method == "DELETE":
        if not app.faults.remove(match["id"]):
            raise errors.ApiError(404, "global/not-found", f"No fault rule {match['id']}.")
        return 200, {"ok": True}
    if method == "PUT" and path == "/capacity":
        type_name, region, available = body.get("instance_type"), body.get("region"), body.get("available")
        if type_name not in app.catalog.instance_types or region not in app.catalog.regions:
            raise errors.invalid_parameters("instance_type and region must name a catalogue type and region.")
        if not isinstance(available, int) or available < 0:
            raise errors.invalid_parameters("available must be a non-negative integer.")
        state.set_available(type_name, region, available)
        return 200, {"instance_type": type_name, "region": region, "available": state.available(type_name, region)}
    if method == "PUT" and path == "/rate-limits":
        app.limiter.enabled = bool(body.get("enabled"))
        app.limiter.reset()
        return 200, {"enabled": app.limiter.enabled}
    if method == "PUT" and path == "/boot":
        hang = body.get("hang")
        if hang not in (None, "ip", "no-ip"):
            raise errors.invalid_parameters("hang must be 'ip', 'no-ip' or null.")
        app.hang_new_boots = hang
        return 200, {"hang": hang}
    match = re.fullmatch(r"/instances/(?P<id>[0-9a-f]+)(?P<rest>/status|/boot)?", path)
    if match:
        return _instance_control(app, method, match["id"], match["rest"], body)
    raise errors.ApiError(404, "global/not-found", f"No control route {method} /_emulator{path}.")


def _instance_control(
    app: EmulatorApp, method: str, instance_id: str, rest: str | None, body: dict[str, Any]
) -> tuple[int, Any]:
    state = app.state
    if rest is None and method == "GET":
        doc = state.instance_doc(instance_id)
        if doc is None:
            raise errors.instance_not_found()
        layout = app.layout
        return 200, {
            "instance": doc,
            "root": str(layout.root(instance_id)),
            "home": str(layout.home(instance_id)),
            "filesystems": {m["name"]: str(layout.filesystem_dir(m["file_system_id"])) for m in doc["mounts"]},
        }
    if rest == "/status" and method == "POST":
        status = body.get("status")
        record = state.control_set_status(instance_id, str(status), app.now())
        app.layout.set_gpu_healthy(instance_id, status != "unhealthy")
        app.wake_reconciler()
        return 200, record
    if rest == "/boot" and method == "POST":
        state.control_hang_boot(instance_id, body.get("hang"))
        app.wake_reconciler()
        return 200, {"hang": body.get("hang")}
    raise errors.ApiError(
        404, "global/not-found", f"No control route {method} /_emulator/instances/{instance_id}{rest or ''}."
    )

"""Routes of the control API under `/_emulator/` (no auth, loopback only): faults, capacity, instance states, reset.

GET    /_emulator/health                         {"ok": true, "time_scale": ..., "api_url": ...}
GET    /_emulator/stats                          API requests served, 429s and launches among them (benchmarks)
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

from typing import Any

from .. import errors, validation
from ..router import Request, control
from ..schemas import BootRequest, CapacityRequest, InstanceStatusRequest, RateLimitsRequest
from .instances import instance_record


def _body(request: Request) -> dict[str, Any]:
    """Control bodies are lenient: a missing or non-object body counts as `{}`."""
    return request.body if isinstance(request.body, dict) else {}


@control("GET", "/health")
def health(request: Request) -> Any:
    return {"ok": True, "time_scale": request.app.time_scale, "api_url": request.app.api_url}


@control("GET", "/stats")
def stats(request: Request) -> Any:
    return request.app.stats_snapshot()


@control("GET", "/state")
def state(request: Request) -> Any:
    return {"instances": request.app.state.instances.all_docs()}


@control("POST", "/reset")
def reset(request: Request) -> Any:
    request.app.reset()
    return {"ok": True}


@control("POST", "/accounts")
def add_account(request: Request) -> Any:
    account_id, key = request.app.state.accounts.create()
    return {"account_id": account_id, "api_key": key}


@control("GET", "/faults")
def list_faults(request: Request) -> Any:
    return {"rules": request.app.faults.rules()}


@control("POST", "/faults")
def add_fault(request: Request) -> Any:
    return request.app.faults.add(_body(request)).to_dict()


@control("DELETE", "/faults")
def clear_faults(request: Request) -> Any:
    request.app.faults.clear()
    return {"ok": True}


@control("DELETE", "/faults/{id}")
def remove_fault(request: Request) -> Any:
    if not request.app.faults.remove(request.params["id"]):
        raise errors.ApiError(404, "global/not-found", f"No fault rule {request.params['id']}.")
    return {"ok": True}


@control("PUT", "/capacity")
def set_capacity(request: Request) -> Any:
    app = request.app
    body = validation.parse(CapacityRequest, _body(request))
    if body.instance_type not in app.catalog.instance_types or body.region not in app.catalog.regions:
        raise errors.invalid_parameters("instance_type and region must name a catalogue type and region.")
    capacity = app.state.instance_types
    capacity.set_available(body.instance_type, body.region, body.available)
    return {
        "instance_type": body.instance_type,
        "region": body.region,
        "available": capacity.available(body.instance_type, body.region),
    }


@control("PUT", "/rate-limits")
def set_rate_limits(request: Request) -> Any:
    limiter = request.app.limiter
    limiter.enabled = validation.parse(RateLimitsRequest, _body(request)).enabled
    limiter.reset()
    return {"enabled": limiter.enabled}


@control("PUT", "/boot")
def hang_new_boots(request: Request) -> Any:
    hang = validation.parse(BootRequest, _body(request)).hang
    request.app.hang_new_boots = hang
    return {"hang": hang}


@control("GET", "/instances/{id}")
def instance_paths(request: Request) -> Any:
    doc = request.app.state.instances.doc(request.params["id"])
    layout = request.app.layout
    return {
        "instance": doc,
        "root": str(layout.root(doc["id"])),
        "home": str(layout.home(doc["id"])),
        "filesystems": {m["name"]: str(layout.filesystem_dir(m["file_system_id"])) for m in doc["mounts"]},
    }


@control("POST", "/instances/{id}/status")
def set_instance_status(request: Request) -> Any:
    app = request.app
    status = validation.parse(InstanceStatusRequest, _body(request)).status
    doc = app.state.instances.set_status(request.params["id"], status)
    app.layout.set_gpu_healthy(doc["id"], status != "unhealthy")
    app.wake_reconciler()
    return instance_record(app.state, doc, None, request.now)


@control("POST", "/instances/{id}/boot")
def hang_boot(request: Request) -> Any:
    hang = validation.parse(BootRequest, _body(request)).hang
    request.app.state.instances.hang_boot(request.params["id"], hang)
    request.app.wake_reconciler()
    return {"hang": hang}

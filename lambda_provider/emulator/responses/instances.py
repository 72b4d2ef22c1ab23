"""Routes of instances and instance operations, and the `Instance` record they answer with."""

from __future__ import annotations

from typing import Any

from .. import validation
from ..models import RUNNING_STATUSES, Account, CloudState
from ..router import Request, api
from ..schemas import InstanceIdsRequest, InstanceModificationRequest, LaunchRequest

_ACTIONS = ("migrate", "rebuild", "restart", "cold_reboot", "terminate")


def instance_record(state: CloudState, doc: dict[str, Any], account: Account | None, now: float) -> dict[str, Any]:
    """The live `Instance` shape: no timestamps; `is_reserved` and `workspace_id` (undeclared, returned live);
    the emulator-only `ssh_port` while running."""
    spec = state.catalog.instance_types[doc["type"]]
    status = doc["status"]
    body: dict[str, Any] = {"id": doc["id"]}
    if doc.get("name") is not None:
        body["name"] = doc["name"]
    if doc["ip"]:
        body["ip"] = doc["ip"]
        # Loopback like `ip`: the same address reaches the instance from the host (there is no private network).
        body["private_ip"] = doc["ip"]
    body["status"] = status
    body["ssh_key_names"] = [doc["ssh_key_name"]]
    body["file_system_names"] = [m["name"] for m in doc["mounts"]]
    if doc["mounts"]:  # omitted when nothing is mounted, as live (../shared/lambda-cloud/NOTES.md §3.6)
        body["file_system_mounts"] = [
            {"mount_point": m["mount_point"], "file_system_id": m["file_system_id"]} for m in doc["mounts"]
        ]
    body["region"] = state.catalog.region_api(doc["region"])
    body["instance_type"] = spec.to_api()
    if doc["hostname"] or doc["ip"]:
        body["hostname"] = doc["hostname"] or doc["ip"]
    body["jupyter_token"] = doc["jupyter_token"]
    body["jupyter_url"] = f"https://jupyter-{doc['jupyter_host']}.lambdaspaces.com/?token={doc['jupyter_token']}"
    body["actions"] = _actions(state, doc, now)
    body["tags"] = doc["tags"]
    if doc["firewall_ruleset_ids"]:
        body["firewall_rulesets"] = [{"id": r} for r in doc["firewall_ruleset_ids"]]
    body["is_reserved"] = False
    if account is not None:
        body["workspace_id"] = account.workspace_id
    if doc["ssh_port"] and status in RUNNING_STATUSES:
        body["ssh_port"] = doc["ssh_port"]  # emulator-only: clients default to 22 when it is absent
    return body


def _actions(state: CloudState, doc: dict[str, Any], now: float) -> dict[str, Any]:
    status = doc["status"]
    if status in RUNNING_STATUSES:
        return {n: {"available": True} for n in _ACTIONS}
    if status == "booting":
        blocked = {
            "available": False,
            "reason_code": "vm-has-not-launched",
            "reason_description": "The instance has not launched yet.",
        }
        actions = {n: dict(blocked) for n in _ACTIONS}
        if now - doc["launched_at"] >= state.timings.terminate_available:
            actions["terminate"] = {"available": True}
        return actions
    if status == "preempted":
        actions = {
            n: {"available": False, "reason_code": "vm-has-not-launched", "reason_description": "Preempted."}
            for n in _ACTIONS
        }
        actions["terminate"] = {"available": True}
        return actions
    blocked = {
        "available": False,
        "reason_code": "vm-is-terminating",
        "reason_description": "The instance is terminating.",
    }
    return {n: dict(blocked) for n in _ACTIONS}


def _records(request: Request, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [instance_record(request.app.state, d, request.caller, request.now) for d in docs]


@api("GET", "/instances")
def list_instances(request: Request) -> Any:
    # `cluster_id` filters to 1-Click Cluster members; the emulator has no clusters, so a filter matches nothing.
    if isinstance(request.body, dict) and request.body.get("cluster_id"):
        return []
    return _records(request, request.app.state.instances.list(request.caller))


@api("GET", "/instances/{id}")
def get_instance(request: Request) -> Any:
    return _records(request, [request.app.state.instances.get(request.caller, request.params["id"])])[0]


@api("POST", "/instances/{id}")
def rename_instance(request: Request) -> Any:
    body = validation.parse(InstanceModificationRequest, request.body)
    doc = request.app.state.instances.rename(request.caller, request.params["id"], body.name)
    return _records(request, [doc])[0]


@api("POST", "/instance-operations/launch")
def launch(request: Request) -> Any:
    app = request.app
    doc = app.state.instances.launch(request.caller, validation.Staged(LaunchRequest, request.body), request.now)
    if app.hang_new_boots is not None:
        app.state.instances.hang_boot(doc["id"], app.hang_new_boots)
    return {"instance_ids": [doc["id"]]}


@api("POST", "/instance-operations/terminate")
def terminate(request: Request) -> Any:
    ids = validation.parse(InstanceIdsRequest, request.body).instance_ids
    terminated = request.app.state.instances.terminate(request.caller, ids, request.now)
    request.app.wake_reconciler()
    return {"terminated_instances": _records(request, terminated)}


@api("POST", "/instance-operations/restart")
def restart(request: Request) -> Any:
    ids = validation.parse(InstanceIdsRequest, request.body).instance_ids
    restarted = request.app.state.instances.restart(request.caller, ids)
    request.app.wake_reconciler()
    return {"restarted_instances": _records(request, restarted)}

"""Routes of SSH keys, and the `SSHKey` record."""

from __future__ import annotations

from typing import Any

from .. import validation
from ..models import Account
from ..router import Request, api
from ..schemas import AddSSHKeyRequest


def ssh_key_record(doc: dict[str, Any], account: Account) -> dict[str, Any]:
    # `workspace_id` is undeclared in the spec but returned live since June 2026 (../shared/lambda-cloud/NOTES.md
    # §3.5).
    return {
        "id": doc["id"],
        "name": doc["name"],
        "public_key": doc["public_key"],
        "workspace_id": account.workspace_id,
    }


@api("GET", "/ssh-keys")
def list_ssh_keys(request: Request) -> Any:
    return [ssh_key_record(k, request.caller) for k in request.app.state.ssh_keys.list(request.caller)]


@api("POST", "/ssh-keys")
def add_ssh_key(request: Request) -> Any:
    body = validation.parse(AddSSHKeyRequest, request.body)
    doc, private_pem = request.app.state.ssh_keys.add(request.caller, body.name, body.public_key)
    record = ssh_key_record(doc, request.caller)
    if private_pem is not None:
        record["private_key"] = private_pem  # GeneratedSSHKey: returned once, not kept
    return record


@api("DELETE", "/ssh-keys/{id}")
def delete_ssh_key(request: Request) -> Any:
    request.app.state.ssh_keys.delete(request.caller, request.params["id"])
    return {}

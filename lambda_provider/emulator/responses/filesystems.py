"""Routes of filesystems, and the `Filesystem` record.

The list is spelled /file-systems, create and delete /filesystems (../shared/lambda-cloud/NOTES.md §3.6); POST
/file-systems is a 405.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .. import validation
from ..models import Account, CloudState
from ..router import Request, api
from ..schemas import FilesystemCreateRequest


def filesystem_record(
    state: CloudState, doc: dict[str, Any], account: Account, bytes_used: int | None
) -> dict[str, Any]:
    body = {
        "id": doc["id"],
        "name": doc["name"],
        "mount_point": f"/lambda/nfs/{doc['name']}",
        "created": datetime.fromtimestamp(doc["created"], tz=UTC).isoformat(),
        "created_by": {"id": account.user_id, "email": account.email, "status": "active"},
        "is_in_use": state.filesystems.in_use(doc["id"]),
        "region": state.catalog.region_api(doc["region"]),
    }
    if bytes_used is not None:
        body["bytes_used"] = bytes_used
    return body


@api("GET", "/file-systems")
def list_filesystems(request: Request) -> Any:
    app = request.app
    return [
        filesystem_record(app.state, fs, request.caller, app.layout.filesystem_bytes_used(fs["id"]))
        for fs in app.state.filesystems.list(request.caller)
    ]


@api("POST", "/filesystems")
def create_filesystem(request: Request) -> Any:
    body = validation.parse(FilesystemCreateRequest, request.body)
    doc = request.app.state.filesystems.create(request.caller, body.name, body.region)
    request.app.layout.create_filesystem(doc["id"])
    return filesystem_record(request.app.state, doc, request.caller, 0)


@api("DELETE", "/filesystems/{id}")
def delete_filesystem(request: Request) -> Any:
    request.app.state.filesystems.delete(request.caller, request.params["id"])
    request.app.layout.delete_filesystem(request.params["id"])
    return {"deleted_ids": [request.params["id"]]}

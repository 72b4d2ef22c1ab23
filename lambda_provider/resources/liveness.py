"""What Lambda says about a tracked instance right now, for `Instance.diff`: alive, dead (replace it) or unhealthy.

Lambda terminates, preempts and fails nodes during long runs; the state still holds the old id. `diff` asks the API
once per instance (bounded: a few tries, a short timeout) and replaces a dead one, so a plain `pulumi up` repairs
the fleet. When the API cannot be read, `diff` decides from the recorded state alone, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from lambda_provider.client import LambdaError
from lambda_provider.client.models import GONE_OR_GOING_STATUSES
from lambda_provider.resources.settings import ProviderSettings

log = logging.getLogger("lambda_provider.resources")

GONE = "gone"  # GET /instances/{id} answers 404: the record has expired
DEAD_STATUSES = GONE_OR_GOING_STATUSES | {GONE}  # terminating, terminated, preempted, gone
# `unhealthy` is kept, not replaced: the instance still exists (and bills), Lambda's health check may recover it,
# and a replacement loses its local disk and costs a full boot; `replace_command` tells the user how to force one.
UNHEALTHY = "unhealthy"
REASON = "live_status"  # the replace reason Pulumi shows: the name of the output holding the live status


def live_status(settings: ProviderSettings, instance_id: str) -> str | None:
    """The instance's status now (`GONE` for a 404); None when the API could not be read."""
    try:
        with settings.probe_client() as client:
            inst = client.instances.find(instance_id)
    except (LambdaError, ValueError) as exc:
        log.warning(
            "could not read the live status of instance %s (%s); diffing it from the recorded state", instance_id, exc
        )
        return None
    return inst.status if inst is not None else GONE


def node_label(props: Mapping[str, Any]) -> str:
    """The Pulumi resource name (what the user's program calls it), falling back to the instance name."""
    owner = props.get("owner")
    resource = owner.get("resource") if isinstance(owner, Mapping) else None
    return str(resource or props.get("name") or "instance")


def replace_command(props: Mapping[str, Any]) -> str:
    """`pulumi up --replace` with a URN glob matching this Instance (the provider never sees its URN)."""
    name = node_label(props).rsplit("/", 1)[-1]  # the owner tag qualifies the name by its parent component
    return f"pulumi up --replace '**lambda:Instance::{name}'"


def dead_fact(props: Mapping[str, Any], instance_id: str, status: str) -> str:
    """E.g. `node-0: instance 0a1b... is preempted at Lambda`."""
    what = "no longer exists (the API answers 404)" if status == GONE else f"is {status}"
    return f"{node_label(props)}: instance {instance_id} {what} at Lambda"


def dead_reason(props: Mapping[str, Any], instance_id: str, status: str) -> str:
    return f"{dead_fact(props, instance_id, status)}; `pulumi up` replaces it (a new launch, same placements)"


def unhealthy_warning(props: Mapping[str, Any], instance_id: str) -> str:
    return (
        f"{node_label(props)}: instance {instance_id} is unhealthy at Lambda (a failed health check); it still "
        f"bills and may recover, so it is kept. To replace it now: `{replace_command(props)}`"
    )


def replaces(settings: ProviderSettings, instance_id: str, olds: Mapping[str, Any]) -> list[str]:
    """[REASON] when Lambda says the instance is dead (the next create launches anew); warns about unhealthy."""
    status = live_status(settings, instance_id)
    if status in DEAD_STATUSES:
        log.warning("%s", dead_reason(olds, instance_id, status))
        return [REASON]
    if status == UNHEALTHY:
        log.warning("%s", unhealthy_warning(olds, instance_id))
    return []

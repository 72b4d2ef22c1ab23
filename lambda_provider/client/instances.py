"""Instances: list/get/rename/terminate, waiting, and a launch that is never blindly retried.

Launch is not idempotent (no client token exists). After an ambiguous failure -- a 5xx, a timeout, a reset, a
dropped or garbled answer -- the server may have created the instance. `launch()` then lists instances (several
times, since a new instance can lag in the list) and adopts the one carrying the caller's ownership tags; only if
none appears may it send the launch again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lambda_provider.client.errors import AmbiguousLaunch, LambdaError, NotFound, ServerError
from lambda_provider.client.models import Instance
from lambda_provider.client.retry import is_ambiguous, is_transient
from lambda_provider.client.transport import Transport

log = logging.getLogger("lambda_provider.client")


@dataclass(frozen=True)
class LaunchRequest:
    region_name: str
    instance_type_name: str
    ssh_key_name: str
    name: str | None = None
    file_system_names: Sequence[str] = ()
    hostname: str | None = None
    image: Mapping[str, str] | None = None  # {"id": ...} or {"family": ...}
    user_data: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    firewall_ruleset_ids: Sequence[str] = ()

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "region_name": self.region_name,
            "instance_type_name": self.instance_type_name,
            "ssh_key_names": [self.ssh_key_name],
        }
        if self.name:
            body["name"] = self.name
        if self.file_system_names:
            body["file_system_names"] = list(self.file_system_names)
        if self.hostname:
            body["hostname"] = self.hostname
        if self.image:
            body["image"] = dict(self.image)
        if self.user_data:
            body["user_data"] = self.user_data
        if self.tags:
            body["tags"] = [{"key": k, "value": v} for k, v in sorted(self.tags.items())]
        if self.firewall_ruleset_ids:
            body["firewall_rulesets"] = [{"id": i} for i in self.firewall_ruleset_ids]
        return body


@dataclass(frozen=True)
class ReconcilePolicy:
    """How hard to look for an instance a lost launch answer may have created."""

    # A new instance can lag in the list: look for ~2 minutes before concluding that a launch did not happen.
    list_attempts: int = 8
    list_interval: float = 15.0
    # Sends of the launch request in total. Each resend comes only after the listing above found no instance, so it
    # is as safe as the first send; several let a first `up` ride out a 5xx storm.
    launch_attempts: int = 6


class InstancesClient:
    def __init__(self, transport: Transport, reconcile: ReconcilePolicy | None = None) -> None:
        self._t = transport
        self.reconcile = reconcile or ReconcilePolicy()

    def list(self) -> list[Instance]:
        data = self._t.request("GET", "/instances")
        return [Instance.from_api(r) for r in data if isinstance(r, dict)] if isinstance(data, list) else []

    def get(self, instance_id: str) -> Instance:
        return Instance.from_api(self._t.request("GET", f"/instances/{instance_id}"))

    def find(self, instance_id: str) -> Instance | None:
        """The instance, or None when the API says it does not exist."""
        try:
            return self.get(instance_id)
        except NotFound:
            return None

    def find_owned(self, tags: Mapping[str, str]) -> list[Instance]:
        """Live (not terminating/terminated/preempted) instances carrying all of `tags`."""
        return [i for i in self.list() if i.has_tags(tags) and not i.is_gone_or_going]

    def rename(self, instance_id: str, name: str) -> Instance:
        return Instance.from_api(
            self._t.request("POST", f"/instances/{instance_id}", body={"name": name}, idempotent=True)
        )

    def terminate(self, instance_ids: Sequence[str]) -> list[Instance]:
        data = self._t.request(
            "POST", "/instance-operations/terminate", body={"instance_ids": list(instance_ids)}, idempotent=True
        )
        raw = data.get("terminated_instances") if isinstance(data, dict) else None
        return [Instance.from_api(r) for r in raw if isinstance(r, dict)] if isinstance(raw, list) else []

    def launch(
        self,
        request: LaunchRequest,
        *,
        owner_tags: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> str:
        """Launch one instance and return its id.

        `owner_tags` (a subset of `request.tags`) identify the instance if the answer is lost. Without them an
        ambiguous failure raises `AmbiguousLaunch` at once: there is no safe way to retry.
        """
        owner_tags = dict(owner_tags or {})
        missing = {k: v for k, v in owner_tags.items() if request.tags.get(k) != v}
        if missing:
            raise ValueError(f"owner_tags must also be sent as launch tags: {sorted(missing)}")
        body = request.to_api()
        last_error: LambdaError | None = None
        for send in range(self.reconcile.launch_attempts):
            try:
                data = self._t.request("POST", "/instance-operations/launch", body=body, idempotent=False, launch=True)
            except LambdaError as exc:
                if not is_ambiguous(exc):
                    raise  # a refusal, or a 429 / unsent request the transport gave up on: nothing was created
                last_error = exc
            else:
                ids = data.get("instance_ids") if isinstance(data, dict) else None
                if isinstance(ids, list) and ids and isinstance(ids[0], str):
                    return ids[0]
                last_error = ServerError(f"launch answer without instance_ids: {str(data)[:200]}")
            if not owner_tags:
                raise AmbiguousLaunch(
                    f"launch outcome unknown ({last_error}); no ownership tags to look for it, not retrying"
                )
            log.warning("launch outcome unknown (%s); looking for an instance tagged %s", last_error, owner_tags)
            adopted = self._find_after_ambiguous_launch(owner_tags, sleep)
            if adopted is not None:
                return adopted.id
            log.warning("no instance tagged %s appeared after send %d", owner_tags, send + 1)
        raise AmbiguousLaunch(
            f"launch failed {self.reconcile.launch_attempts} times with unknown outcome (last: {last_error}) and no "
            f"instance tagged {owner_tags} is listed; run `pulumi up` again once the API answers: it adopts an "
            "instance with these tags if one appears, and launches otherwise"
        )

    def _find_after_ambiguous_launch(
        self, owner_tags: Mapping[str, str], sleep: Callable[[float], None]
    ) -> Instance | None:
        for attempt in range(self.reconcile.list_attempts):
            if attempt:
                sleep(self.reconcile.list_interval)
            try:
                owned = self.find_owned(owner_tags)
            except LambdaError as exc:  # listing failed even after retries: keep looking until attempts run out
                log.warning("listing instances to reconcile a launch failed: %s", exc)
                continue
            if owned:
                if len(owned) > 1:
                    log.warning("several instances carry %s: %s", owner_tags, [i.id for i in owned])
                return owned[0]
        return None

    def wait(
        self,
        instance_id: str,
        until: Callable[[Instance | None], bool],
        *,
        timeout: float,
        interval: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Instance | None:
        """Poll `GET /instances/{id}` until `until(instance)` holds (None = gone) or `timeout` passes.

        Returns the last instance seen (None if gone). Transient API failures are tolerated until the deadline.
        Raises TimeoutError with the last status when the deadline passes.
        """
        deadline = time.monotonic() + timeout
        last: Instance | None = None
        last_error: LambdaError | None = None
        while True:
            try:
                last = self.find(instance_id)
                last_error = None
                if until(last):
                    return last
            except NotFound:
                raise
            except LambdaError as exc:
                if not is_transient(exc):
                    raise
                last_error = exc
            if time.monotonic() >= deadline:
                status = last.status if last else "gone"
                detail = f"; last error: {last_error}" if last_error else ""
                raise TimeoutError(f"instance {instance_id} still {status!r} after {timeout:.0f}s{detail}")
            sleep(min(interval, max(0.0, deadline - time.monotonic())))

"""`Instance`: a Lambda Cloud instance as a Pulumi dynamic resource that never loses (or doubles) an instance.

Why one file: the provider and the program-side `Instance` share one props schema and change together.

Create: adopt a live instance that carries this resource's ownership tags and the same spec (left by a crashed,
timed-out or answer-less earlier run); otherwise pick a placement with capacity and launch once (the client
reconciles an ambiguous launch by tag instead of re-sending it); then wait for `active` and an `ip`.

With `wait_for_boot=False` (what `GpuFleet` uses) `create` returns as soon as the launch is acknowledged (or the
instance adopted), with the record as it is then (`status: booting`, no ip yet, `ready: null`): the engine tracks
the id at once, and the caller waits for the boot itself (lambda_provider/fleet/fleet_nodes.py waits for every node
of a fleet together). Why: the dynamic-provider host serves at most four calls at once, so creates that block for
a whole boot bring a fleet up in waves of four.

The Python dynamic-provider host cannot report a partially created resource (an exception records nothing), so
once an instance exists `create` does not raise: if the boot outlasts its timeout (or anything else fails after
the launch), it returns the instance with `ready: false` and `boot_error`, so the instance is tracked -- `destroy`
terminates it, and the next `up` diffs it as changed and waits for it again. The program-side class turns
`ready: false` into an exception raised after all registrations, so `pulumi up` still exits non-zero.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    ReadResult,
    Resource,
    UpdateResult,
)

from lambda_provider.client import (
    Conflict,
    InsufficientCapacity,
    LambdaClient,
    LambdaError,
    LaunchRequest,
)
from lambda_provider.client.models import GONE_OR_GOING_STATUSES, TERMINAL_STATUSES, InstanceTypeAvailability
from lambda_provider.client.models import Instance as InstanceRecord
from lambda_provider.resources import liveness, settings
from lambda_provider.resources.busy_retry import retry_while_busy
from lambda_provider.resources.instance_spec import (
    REPLACE_KEYS,
    requested_spec,
    validate_against_catalogue,
    validate_static,
)
from lambda_provider.resources.naming import SPEC_TAG, default_instance_name, owner_tags, spec_fingerprint
from lambda_provider.resources.placement import NoCapacity, accepts, choose, parse_placements
from lambda_provider.resources.provider import LambdaProvider
from lambda_provider.resources.values import as_float, as_str_dict, as_str_list, is_unknown

log = logging.getLogger("lambda_provider.resources")

OUTPUT_KEYS = (
    "instance_id",
    "ip",
    "private_ip",
    "ssh_port",
    "status",
    "ready",
    "boot_error",
    "hostname",
    "architecture",
    "gpu_description",
    "gpu_count",
    "price_cents_per_hour",
    "instance_type",
    "region",
    "file_system_mounts",
    "requested_spec",
    "live_status",
)
GONE_FOR_READ = GONE_OR_GOING_STATUSES
_RERUN_REPLACES = "Run `pulumi up` again: its diff sees the dead instance and launches a replacement (same placements)."


def default_boot_timeout(gpus: int) -> float:
    """Seconds to wait for `active` + ip: 8-GPU boxes take up to ~25 min, A10s ~4 min
    (../shared/lambda-cloud/NOTES.md §4)."""
    if gpus >= 8:
        return 35 * 60.0
    if gpus >= 2:
        return 20 * 60.0
    return 15 * 60.0


def _boot_timeout(props: Mapping[str, Any], gpus: int) -> float:
    return as_float(props.get("boot_timeout_seconds")) or default_boot_timeout(gpus)


def _settled(inst: InstanceRecord | None) -> bool:
    """Stop waiting: ready, dead, or unhealthy (Lambda's health check failed: waiting out the timeout helps nobody)."""
    return inst is None or inst.is_ready or inst.status in TERMINAL_STATUSES or inst.status == liveness.UNHEALTHY


class DiedWhileBooting(RuntimeError):
    """The instance was terminated or preempted before it became ready (so it does not bill)."""


class InstanceProvider(LambdaProvider):
    """Settings (API key, URL, pacing) come from `configure`, never from a pickle (resources/provider.py)."""

    delete_first = "always"  # a replacement never runs beside the old instance (two would bill)

    # ---------------------------------------------------------------- check / diff
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = dict(news)
        key = inputs.get("ssh_key_name")
        if isinstance(key, list) and len(key) == 1 and not is_unknown(key):
            inputs["ssh_key_name"] = key[0]  # one key given as a list
        failures = validate_static(inputs)
        if not failures:
            try:
                client = self.settings.client()
            except ValueError as exc:
                return CheckResult(inputs, [CheckFailure("placements", str(exc))])
            with client:
                failures = validate_against_catalogue(inputs, client)
        return CheckResult(inputs, failures)

    def changed_keys(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> tuple[list[str], list[str]]:
        old_spec = olds.get("requested_spec") or {}
        new_spec = requested_spec(news)
        replaces = [k for k in REPLACE_KEYS if is_unknown(new_spec.get(k)) or new_spec.get(k) != old_spec.get(k)]
        in_place: list[str] = []
        placements = news.get("placements")
        if is_unknown(placements):
            replaces.append("placements")
        elif not accepts(parse_placements(placements), olds.get("instance_type") or "", olds.get("region") or ""):
            replaces.append("placements")  # the running type/region is no longer acceptable
        elif _canonical(placements) != _canonical(olds.get("placements")):
            in_place.append("placements")  # e.g. a fallback added: the running instance stays
        name = news.get("name")
        if is_unknown(name) or name != olds.get("name"):
            in_place.append("name")
        if olds.get("ready") is False and _waits(olds):
            in_place.append("ready")  # an unfinished boot: the next update waits for it again
        if as_float(news.get("boot_timeout_seconds")) != as_float(olds.get("boot_timeout_seconds")):
            in_place.append("boot_timeout_seconds")
        if _waits(news) != _waits(olds):
            in_place.append("wait_for_boot")
        replaces += liveness.replaces(self.settings, id_, olds)
        return replaces, in_place

    # ---------------------------------------------------------------- create
    def create(self, props: dict[str, Any]) -> CreateResult:
        cfg = self.settings
        with cfg.client() as client:
            tags = self._launch_tags(props)
            owner = owner_tags(props.get("owner") or {})
            options = parse_placements(props.get("placements"))
            adopted = self._adopt_or_clean_up(client, owner, tags[SPEC_TAG], options)
            if adopted is not None:
                log.info("adopting instance %s left by an earlier run", adopted.id)
                instance_id = adopted.id
                gpus = adopted.instance_type.specs.gpus if adopted.instance_type else 1
            else:
                instance_id, gpus = self._place_and_launch(client, props, tags, owner, options)
            # From here on an instance exists: never raise, always return it so the engine tracks it.
            try:
                if props.get("name") and adopted is not None and adopted.name != props["name"]:
                    client.instances.rename(instance_id, props["name"])
                if not _waits(props):
                    return CreateResult(instance_id, self._launched(client, instance_id, props))
                return CreateResult(instance_id, self._wait_and_describe(client, instance_id, props, gpus, cfg))
            except DiedWhileBooting:
                raise  # nothing bills: failing (untracked) is safe, and the next up launches afresh
            except Exception as exc:  # noqa: BLE001 - anything after launch must still be tracked
                log.warning("instance %s launched but not ready: %s", instance_id, exc)
                return CreateResult(instance_id, self._unfinished_outputs(props, instance_id, str(exc)))

    def _launch_tags(self, props: Mapping[str, Any]) -> dict[str, str]:
        owner = owner_tags(props.get("owner") or {})
        fingerprint = spec_fingerprint({**requested_spec(props), "name": None})
        return {**as_str_dict(props.get("tags")), **owner, SPEC_TAG: fingerprint}

    def _adopt_or_clean_up(
        self, client: LambdaClient, owner: dict[str, str], fingerprint: str, options: list
    ) -> InstanceRecord | None:
        """Adopt our live instance with the same spec; terminate other live ones we own (untracked billing)."""
        owned = client.instances.find_owned(owner)
        keep = next(
            (
                i
                for i in owned
                if i.tags.get(SPEC_TAG) == fingerprint
                and i.instance_type
                and i.region
                and accepts(options, i.instance_type.name, i.region.name)
            ),
            None,
        )
        strays = [i.id for i in owned if keep is None or i.id != keep.id]
        if strays:
            log.warning("terminating untracked instances owned by this resource with another spec: %s", strays)
            client.instances.terminate(strays)
        return keep

    def _place_and_launch(
        self, client: LambdaClient, props: Mapping[str, Any], tags: dict[str, str], owner: dict[str, str], options: list
    ) -> tuple[str, int]:
        fs_names = as_str_list(props.get("file_system_names"))
        required_region = self._filesystem_region(client, fs_names)
        tried: set[tuple[str, str]] = set()
        while True:
            catalog = client.instance_types.list()
            try:
                type_name, region = choose(options, catalog, required_region=required_region, exclude=tried)
            except NoCapacity as exc:
                raise RuntimeError(str(exc)) from None
            request = LaunchRequest(
                region_name=region,
                instance_type_name=type_name,
                ssh_key_name=str(props["ssh_key_name"]),
                name=props.get("name") or None,
                file_system_names=fs_names,
                hostname=props.get("hostname") or None,
                image=as_str_dict(props.get("image")) or None,
                user_data=props.get("user_data") or None,
                tags=tags,
                firewall_ruleset_ids=as_str_list(props.get("firewall_ruleset_ids")),
            )
            try:
                instance_id = client.instances.launch(request, owner_tags={**owner, SPEC_TAG: tags[SPEC_TAG]})
            except InsufficientCapacity:
                log.warning("capacity for %s in %s vanished; trying the next placement", type_name, region)
                tried.add((type_name, region))
                continue
            return instance_id, _gpus(catalog.get(type_name))

    @staticmethod
    def _filesystem_region(client: LambdaClient, names: list[str]) -> str | None:
        if not names:
            return None
        existing = {f.name: f for f in client.filesystems.list()}
        missing = [n for n in names if n not in existing]
        if missing:
            raise RuntimeError(f"filesystems {missing} do not exist; create them first (Filesystem resource)")
        regions = {existing[n].region.name for n in names if existing[n].region}
        if len(regions) > 1:
            raise RuntimeError(f"filesystems {names} span regions {sorted(regions)}; use filesystems of one region")
        return next(iter(regions), None)

    # ---------------------------------------------------------------- read / update / delete
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with self.settings.client() as client:
            _terminate_strays(client, props, keep=id_)
            inst = client.instances.find(id_)
            if inst is None or inst.status in GONE_FOR_READ:
                return ReadResult(None, {})  # gone outside Pulumi: the engine drops it from state
            return ReadResult(id_, self._describe(client, inst, props))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        cfg = self.settings
        with cfg.client() as client:
            inst = client.instances.find(id_)
            if inst is None or inst.status in GONE_FOR_READ:
                # diff replaces a dead instance; here it died after the diff, or the diff could not read the API.
                status = inst.status if inst else liveness.GONE
                raise RuntimeError(
                    f"{liveness.dead_fact(olds, id_, status)}, so it cannot be updated. {_RERUN_REPLACES}"
                )
            _terminate_strays(client, olds, keep=id_)
            if news.get("name") and inst.name != news["name"]:
                client.instances.rename(id_, news["name"])
            gpus = inst.instance_type.specs.gpus if inst.instance_type else 1
            merged = {**news, "instance_type": olds.get("instance_type"), "region": olds.get("region")}
            if not _waits(news):
                return UpdateResult(self._launched(client, id_, merged, inst))
            try:
                return UpdateResult(self._wait_and_describe(client, id_, merged, gpus, cfg))
            except DiedWhileBooting as exc:
                raise RuntimeError(f"{liveness.node_label(olds)}: {exc}. {_RERUN_REPLACES}") from None
            except Exception as exc:  # noqa: BLE001 - keep it tracked and retried, as in create
                return UpdateResult(self._unfinished_outputs(merged, id_, str(exc)))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        cfg = self.settings
        with cfg.client() as client:
            deadline = time.monotonic() + cfg.delete_timeout
            inst = client.instances.find(id_)
            if inst is None or inst.status == "terminated":
                return  # ended outside Pulumi (a dead node being replaced): nothing to terminate
            if inst.status != "terminating" and not _terminate(client, id_, deadline, cfg.poll_interval):
                return  # gone meanwhile
            remaining = max(1.0, deadline - time.monotonic())
            client.instances.wait(id_, _gone_or_terminated, timeout=remaining, interval=cfg.poll_interval)

    # ---------------------------------------------------------------- outputs
    def _launched(
        self, client: LambdaClient, instance_id: str, props: Mapping[str, Any], inst: InstanceRecord | None = None
    ) -> dict[str, Any]:
        """The record as it is now, without waiting (`wait_for_boot=False`); `ready` is null: nobody waited."""
        inst = inst or client.instances.find(instance_id)
        if inst is None:
            outs = self._unfinished_outputs(props, instance_id, "the launched instance is not listed yet")
        else:
            outs = self._describe(client, inst, props)
        outs["ready"] = None
        outs["boot_error"] = None
        return outs

    def _wait_and_describe(
        self,
        client: LambdaClient,
        instance_id: str,
        props: Mapping[str, Any],
        gpus: int,
        cfg: settings.ProviderSettings,
    ) -> dict[str, Any]:
        timeout = _boot_timeout(props, gpus)
        try:
            inst = client.instances.wait(instance_id, _settled, timeout=timeout, interval=cfg.poll_interval)
        except TimeoutError as exc:
            return self._unfinished_outputs(props, instance_id, f"{exc}; the next `pulumi up` waits again")
        if inst is None or inst.status in TERMINAL_STATUSES:
            status = inst.status if inst else "gone"
            raise DiedWhileBooting(f"instance {instance_id} was {status} while booting; it no longer bills")
        if inst.status == liveness.UNHEALTHY:
            return self._unfinished_outputs(props, instance_id, liveness.unhealthy_warning(props, instance_id))
        return self._describe(client, inst, props)

    def _describe(
        self, client: LambdaClient, inst: InstanceRecord, props: Mapping[str, Any], boot_error: str | None = None
    ) -> dict[str, Any]:
        outs = {k: v for k, v in props.items() if k != "__provider"}
        itype = inst.instance_type
        outs.update(
            {
                "instance_id": inst.id,
                "name": inst.name,
                "ip": inst.ip,
                "private_ip": inst.private_ip,
                "ssh_port": inst.ssh_port,
                "status": inst.status,
                "live_status": inst.status,
                "ready": inst.is_ready,
                "boot_error": boot_error if not inst.is_ready else None,
                "hostname": inst.hostname,
                "architecture": itype.architecture if itype else None,
                "gpu_description": itype.gpu_description if itype else None,
                "gpu_count": itype.specs.gpus if itype else None,
                "price_cents_per_hour": itype.price_cents_per_hour if itype else None,
                "instance_type": itype.name if itype else props.get("instance_type"),
                "region": inst.region.name if inst.region else props.get("region"),
                "file_system_mounts": _mounts(client, inst),
                # read() gets the previous outputs, where e.g. `hostname` is the server's: keep the spec as requested.
                "requested_spec": props.get("requested_spec") or requested_spec(props),
            }
        )
        return outs

    def _unfinished_outputs(self, props: Mapping[str, Any], instance_id: str, error: str) -> dict[str, Any]:
        try:
            with self.settings.client() as client:
                inst = client.instances.find(instance_id)
                if inst is not None:
                    outs = self._describe(client, inst, props, boot_error=error)
                    outs["ready"] = False
                    return outs
        except Exception as exc:  # noqa: BLE001 - describing is best effort; the id is what matters
            error = f"{error}; describing it failed too: {exc}"
        outs = {k: v for k, v in props.items() if k != "__provider"}
        outs.update(
            {
                "instance_id": instance_id,
                "status": "unknown",
                "live_status": "unknown",
                "ready": False,
                "boot_error": error,
                "requested_spec": requested_spec(props),
                "ssh_port": 22,
            }
        )
        return outs


def _waits(props: Mapping[str, Any]) -> bool:
    """Whether create/update wait for the boot (the default; `wait_for_boot=False` leaves it to the caller)."""
    return props.get("wait_for_boot") is not False


def _terminate(client: LambdaClient, instance_id: str, deadline: float, interval: float) -> bool:
    """Terminate, retrying Conflict (terminate is not yet available right after launch); False if already gone."""
    return retry_while_busy(
        lambda: client.instances.terminate([instance_id]), Conflict, deadline=deadline, interval=interval
    )


def _terminate_strays(client: LambdaClient, props: Mapping[str, Any], keep: str) -> None:
    """Terminate live instances with this resource's ownership tags other than the tracked one.

    Such an instance is untracked billing: e.g. a launch answer lost and the instance listed only after the
    relaunch. Ownership tags name project, stack and resource, so nothing outside this resource matches.
    """
    if not props.get("owner"):
        return
    strays = [i.id for i in client.instances.find_owned(owner_tags(props["owner"])) if i.id != keep]
    if strays:
        log.warning("terminating untracked instances carrying the ownership tags of %s: %s", keep, strays)
        client.instances.terminate(strays)


def _canonical(placements: Any) -> list[dict[str, Any]]:
    return [p.to_dict() for p in parse_placements(placements)]


def _gone_or_terminated(inst: InstanceRecord | None) -> bool:
    return inst is None or inst.status in TERMINAL_STATUSES


def _gpus(item: InstanceTypeAvailability | None) -> int:
    return item.instance_type.specs.gpus if item else 1


def _mounts(client: LambdaClient, inst: InstanceRecord) -> dict[str, str]:
    """{filesystem name: mount point} (default /lambda/nfs/<name> unless the record says otherwise)."""
    if not inst.file_system_names:
        return {}
    mounts = {n: f"/lambda/nfs/{n}" for n in inst.file_system_names}
    if inst.file_system_mounts:
        try:
            by_id = {f.id: f for f in client.filesystems.list()}
        except LambdaError:
            by_id = {}
        for mount in inst.file_system_mounts:
            fs = by_id.get(mount.file_system_id)
            if fs is not None:
                mounts[fs.name] = mount.mount_point
    return mounts


class Instance(Resource, module="lambda", name="Instance"):
    """A Lambda Cloud instance. Type token `pulumi-python:dynamic/lambda:Instance`.

    Placement: `instance_type` (str or list) + `region` (str, list or None = any), or explicit `placements`
    ([{'instance_type', 'region'}] in preference order). The first option with capacity now is launched.
    Only `name` changes in place; any other input change replaces the instance (delete first, then create).
    `wait_for_boot=False`: create returns once the launch is acknowledged (`ready` stays null; see the module doc).
    """

    instance_id: pulumi.Output[str]
    name: pulumi.Output[str]
    ip: pulumi.Output[str | None]
    private_ip: pulumi.Output[str | None]
    ssh_port: pulumi.Output[int]
    status: pulumi.Output[str]
    live_status: pulumi.Output[str]
    ready: pulumi.Output[bool]
    boot_error: pulumi.Output[str | None]
    hostname: pulumi.Output[str | None]
    architecture: pulumi.Output[str]
    gpu_description: pulumi.Output[str]
    gpu_count: pulumi.Output[int]
    price_cents_per_hour: pulumi.Output[int]
    instance_type: pulumi.Output[str]
    region: pulumi.Output[str]
    file_system_mounts: pulumi.Output[dict[str, str]]

    def __init__(
        self,
        resource_name: str,
        *,
        ssh_key_name: pulumi.Input[str] | list[pulumi.Input[str]],
        instance_type: str | list[str] | None = None,
        region: str | list[str] | None = None,
        placements: list[dict[str, str | None]] | None = None,
        file_system_names: pulumi.Input[list[pulumi.Input[str]]] | None = None,
        name: pulumi.Input[str] | None = None,
        image: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        firewall_ruleset_ids: pulumi.Input[list[pulumi.Input[str]]] | None = None,
        hostname: str | None = None,
        user_data: pulumi.Input[str] | None = None,
        boot_timeout_seconds: float | None = None,
        wait_for_boot: bool = True,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        if placements is None:
            placements = placements_from(instance_type, region)
        props: dict[str, Any] = {
            "placements": placements,
            "ssh_key_name": ssh_key_name,
            "file_system_names": file_system_names or [],
            "name": name if name is not None else default_instance_name(pulumi.get_stack(), resource_name),
            "image": image,
            "tags": tags or {},
            "firewall_ruleset_ids": firewall_ruleset_ids or [],
            "hostname": hostname,
            "user_data": pulumi.Output.secret(user_data) if user_data is not None else None,
            "boot_timeout_seconds": boot_timeout_seconds,
            "wait_for_boot": wait_for_boot,
            "owner": {
                "project": pulumi.get_project(),
                "stack": pulumi.get_stack(),
                "resource": _owner_name(resource_name, opts),
            },
            **{k: None for k in OUTPUT_KEYS if k not in ("hostname",)},
        }
        ours = pulumi.ResourceOptions(delete_before_replace=True, additional_secret_outputs=["user_data"])
        super().__init__(InstanceProvider(), resource_name, props, pulumi.ResourceOptions.merge(opts, ours))
        if wait_for_boot:
            pulumi.Output.all(self.ready, self.boot_error).apply(lambda v: _fail_if_unready(resource_name, v[0], v[1]))


def _owner_name(resource_name: str, opts: pulumi.ResourceOptions | None) -> str:
    """The resource name, qualified by its parent component's name: names are unique only per parent."""
    parent = opts.parent if opts else None
    parent_name = getattr(parent, "_name", None) if parent is not None else None
    return f"{parent_name}/{resource_name}" if isinstance(parent_name, str) else resource_name


class InstanceNotReady(pulumi.RunError):
    """Raised in the program when an instance is tracked in state but did not finish booting."""


def _fail_if_unready(resource_name: str, ready: bool | None, boot_error: str | None) -> None:
    # Raised inside an apply: the SDK re-raises it after all registrations, so `pulumi up` exits non-zero while
    # the state keeps the instance (destroy terminates it; the next up waits for it again).
    if ready is False and not pulumi.runtime.is_dry_run():  # preview must still show the plan
        raise InstanceNotReady(
            f"instance {resource_name} is tracked in state but not ready: {boot_error}. Run "
            "`pulumi up` again to keep waiting for it, or `pulumi destroy` to terminate it."
        )


def placements_from(instance_type: str | list[str] | None, region: str | list[str] | None) -> list[dict[str, Any]]:
    if instance_type is None:
        raise ValueError("Instance needs instance_type=... (str or list, in preference order) or placements=[...]")
    types = [instance_type] if isinstance(instance_type, str) else list(instance_type)
    regions: list[str | None] = [region] if region is None or isinstance(region, str) else list(region)
    return [{"instance_type": t, "region": r} for t in types for r in regions]

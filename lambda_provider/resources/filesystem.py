"""`Filesystem`: a persistent regional filesystem, meant to outlive the instances that mount it.

Names are unique per account, so create adopts an existing filesystem of the same name and region (a send that lost
its answer, in this run or an earlier one, or data the user wants to keep) and refuses one in another region; a
region move of a filesystem kept by `retain_on_delete` fails at preview (its name stays taken). Delete retries
`filesystems/filesystem-in-use` while instances that mounted it are still terminating.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, ReadResult, Resource

from lambda_provider.client import FilesystemInUse, LambdaClient
from lambda_provider.client.errors import Duplicate
from lambda_provider.client.models import Filesystem as FilesystemRecord
from lambda_provider.client.reconcile import create_or_adopt
from lambda_provider.domain import FILESYSTEM_NAME_MAX, FILESYSTEM_NAME_PATTERN
from lambda_provider.resources import lookups
from lambda_provider.resources.busy_retry import delete_while_busy
from lambda_provider.resources.failures import RUN_AGAIN, reported
from lambda_provider.resources.provider import LambdaProvider
from lambda_provider.resources.values import is_unknown


def _outputs(record: FilesystemRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "region": record.region.name if record.region else None,
        "filesystem_id": record.id,
        "mount_point": record.mount_point,
        "created": record.created,
    }


class FilesystemProvider(LambdaProvider):
    replace_keys = ("name", "region")  # Lambda cannot rename or move a filesystem
    delete_first = "when-name-kept"

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        name, region = news.get("name"), news.get("region")
        if not is_unknown(name) and (
            not isinstance(name, str) or len(name) > FILESYSTEM_NAME_MAX or not FILESYSTEM_NAME_PATTERN.match(name)
        ):
            failures.append(
                CheckFailure(
                    "name",
                    f"filesystem name {name!r} must start with a letter, contain only "
                    f"letters, digits and '-', and be at most {FILESYSTEM_NAME_MAX} characters",
                )
            )
        if not is_unknown(region) and (not isinstance(region, str) or not region):
            failures.append(CheckFailure("region", "region is required (e.g. us-east-1)"))
        elif not is_unknown(region) and not failures:
            failures.extend(lookups.region_failures(self.settings, region))
        if not failures and olds and not is_unknown(name) and not is_unknown(region):
            failures.extend(self._kept_filesystem_would_collide(olds, news))
        return CheckResult(dict(news), failures)

    @staticmethod
    def _kept_filesystem_would_collide(olds: dict[str, Any], news: dict[str, Any]) -> list[CheckFailure]:
        """A region move under the same name replaces the filesystem; when it is kept on delete, the old one keeps
        the name (unique per account) and the create would fail after the preview. (The engine re-checks a
        replacement without olds, so only this first check can tell our own filesystem from a foreign one; create
        refuses a foreign one.)"""
        name, region = news["name"], news["region"]
        if not news.get("retained") or olds.get("name") != name or olds.get("region") in (None, region):
            return []
        return [
            CheckFailure(
                "region",
                f"filesystem {name!r} is kept when replaced (retain_on_delete), so it would "
                f"keep its name in {olds['region']} and names are unique per account; filesystems "
                f"cannot move regions: to use {region}, give the filesystem a new name (e.g. "
                f"'{name}-{region}'), or delete the one in {olds['region']} first",
            )
        ]

    def create(self, props: dict[str, Any]) -> CreateResult:
        name, region = props["name"], props["region"]
        with self.client() as client, reported(f"creating filesystem {name!r} in {region}"):
            record = self._adopt(client, name, region) or create_or_adopt(
                lambda: client.filesystems.create(name, region),
                lambda: self._adopt(client, name, region),
                retry=client.transport.retry,
                what=f"filesystem {name!r}",
                taken=(Duplicate,),
            )
        return CreateResult(record.id, _outputs(record))

    @staticmethod
    def _adopt(client: LambdaClient, name: str, region: str) -> FilesystemRecord | None:
        existing = client.filesystems.get_by_name(name)
        if existing is None:
            return None
        have = existing.region.name if existing.region else None
        if have != region:
            raise RuntimeError(
                f"a filesystem named {name!r} already exists in {have}, not {region}; filesystems "
                "cannot move regions: choose another name or region"
            )
        return existing

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with self.client() as client:
            record = client.filesystems.get(id_)
        if record is None:
            return ReadResult(None, {})
        return ReadResult(id_, {**props, **_outputs(record)})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        with reported(f"deleting filesystem {props.get('name')!r}", RUN_AGAIN):
            delete_while_busy(self.settings, lambda client: client.filesystems.delete(id_), FilesystemInUse)


class Filesystem(Resource, module="lambda", name="Filesystem"):
    """A Lambda persistent filesystem. Type token `pulumi-python:dynamic/lambda:Filesystem`.

    Mounted at `mount_point` (`/lambda/nfs/<name>`) on instances that list it in `file_system_names`. Deleting it
    deletes its data: consider `protect=True`.
    """

    name: pulumi.Output[str]
    region: pulumi.Output[str]
    filesystem_id: pulumi.Output[str]
    mount_point: pulumi.Output[str]
    created: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        region: pulumi.Input[str],
        name: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "name": name if name is not None else resource_name,
            "region": region,
            "retained": bool(opts and opts.retain_on_delete),  # a region move cannot reuse the name
            "filesystem_id": None,
            "mount_point": None,
            "created": None,
        }
        super().__init__(FilesystemProvider(), resource_name, props, opts)

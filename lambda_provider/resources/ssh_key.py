"""`SshKey`: an account SSH key, from a given public key or a pair generated locally (private half a secret).

Key names are unique per account, so a replacement that keeps the name deletes first. Create adopts a key that
already has this name and the same public key (a send whose answer was lost, in this run or an earlier one); another
key under the same name is an error, not something to overwrite -- except the orphan of a pair we generated in an
earlier run (see `_clear_lost_generated_key`).
"""

from __future__ import annotations

import logging
from typing import Any

import pulumi
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, ReadResult, Resource

from lambda_provider.client import InUse, LambdaClient
from lambda_provider.client.errors import Duplicate, InvalidParameters
from lambda_provider.client.models import SshKey as SshKeyRecord
from lambda_provider.client.reconcile import create_or_adopt
from lambda_provider.domain import NAME_MAX
from lambda_provider.resources.busy_retry import delete_while_busy
from lambda_provider.resources.failures import RUN_AGAIN, reported
from lambda_provider.resources.provider import LambdaProvider
from lambda_provider.resources.values import is_unknown

log = logging.getLogger("lambda_provider.resources")


def generate_key_pair(comment: str) -> tuple[str, str]:
    """(OpenSSH public key, OpenSSH private key) of a fresh Ed25519 pair."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{public} {comment}", private


def _same_key(a: str, b: str) -> bool:
    """Compare key type and base64 body; comments may differ."""
    return a.split()[:2] == b.split()[:2]


def _generated_comment(props: dict[str, Any]) -> str:
    """The comment on the public half of a pair generated for this resource: it names the project, stack and
    resource, so a key carrying it is known to be this resource's own."""
    return f"pulumi:{props.get('owner') or props['name']}"


def _taken_by_another_key(name: str) -> RuntimeError:
    return RuntimeError(
        f"an SSH key named {name!r} already exists in the account with a different public key; "
        "choose another name, or delete that key if it is no longer used"
    )


class SshKeyProvider(LambdaProvider):
    replace_keys = ("name", "public_key")  # a key cannot be edited
    delete_first = "when-name-kept"

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        name = news.get("name")
        if not is_unknown(name) and (not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX):
            failures.append(CheckFailure("name", f"SSH key name must be 1-{NAME_MAX} characters"))
        public_key = news.get("public_key")
        if (
            not is_unknown(public_key)
            and public_key is not None
            and (not isinstance(public_key, str) or len(public_key.split()) < 2 or len(public_key) > 4096)
        ):
            failures.append(
                CheckFailure(
                    "public_key",
                    "public_key must be an OpenSSH public key line "
                    "('ssh-ed25519 AAAA... comment'), at most 4096 characters",
                )
            )
        return CheckResult(dict(news), failures)

    def changed(self, key: str, olds: dict[str, Any], news: dict[str, Any]) -> bool:
        """A public key changes when its type or body does (not its comment), or when a given key gives way to a
        generated pair."""
        if key != "public_key":
            return super().changed(key, olds, news)
        new_key = news.get("public_key")
        if is_unknown(new_key):
            return True
        if new_key is None:
            return not olds.get("generated")
        return not _same_key(new_key, olds.get("public_key") or "")

    def create(self, props: dict[str, Any]) -> CreateResult:
        name = props["name"]
        public_key, private_key = props.get("public_key"), None
        if not public_key:
            public_key, private_key = generate_key_pair(_generated_comment(props))
        with self.client() as client, reported(f"creating SSH key {name!r}"):
            # A pair generated above is held here until create returns, so a key that our own lost send created
            # carries our public key and we still have its private half: adopting it is safe.
            record = self._settle_existing(client, props, public_key, generated=private_key is not None)
            if record is None:
                record = create_or_adopt(
                    lambda: client.ssh_keys.create(name, public_key),
                    lambda: self._adopt(client, name, public_key),
                    retry=client.transport.retry,
                    what=f"SSH key {name!r}",
                    taken=(Duplicate, InvalidParameters),
                )  # the live API refuses a taken name as invalid-parameters
        outs = {
            "name": record.name,
            "public_key": record.public_key or public_key,
            "key_id": record.id,
            "generated": private_key is not None,
            "private_key": private_key,
        }
        return CreateResult(record.id, outs)

    @staticmethod
    def _settle_existing(
        client: LambdaClient, props: dict[str, Any], public_key: str, generated: bool
    ) -> SshKeyRecord | None:
        """A key already under our name: adopt it when it holds our public key. One that holds a pair generated
        for this very resource by an earlier create that never got recorded (a killed `up`) is an orphan: its
        private half died with that process, so it is deleted to make room for the new pair. Any other key is
        refused."""
        name = props["name"]
        existing = client.ssh_keys.get_by_name(name)
        if existing is None or _same_key(existing.public_key, public_key):
            return existing
        if not generated or existing.public_key.split()[2:] != [_generated_comment(props)]:
            raise _taken_by_another_key(name)
        log.warning("deleting SSH key %r: generated by an earlier run whose private half is lost", name)
        try:
            client.ssh_keys.delete(existing.id)
        except InUse:
            raise RuntimeError(
                f"SSH key {name!r} holds a pair generated by an earlier run that never recorded it, so its private "
                "half is lost, and instances still use it: terminate the instances launched with this key (they are "
                "not in the stack's state), then run `pulumi up` again to generate a new pair"
            ) from None
        return None

    @staticmethod
    def _adopt(client: LambdaClient, name: str, public_key: str) -> SshKeyRecord | None:
        existing = client.ssh_keys.get_by_name(name)
        if existing is None:
            return None
        if _same_key(existing.public_key, public_key):
            return existing
        raise _taken_by_another_key(name)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with self.client() as client:
            record = next((k for k in client.ssh_keys.list() if k.id == id_), None)
        if record is None:
            return ReadResult(None, {})
        return ReadResult(id_, {**props, "name": record.name, "public_key": record.public_key, "key_id": record.id})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        # "Key is currently in use" while an instance using it still terminates.
        with reported(f"deleting SSH key {props.get('name')!r}", RUN_AGAIN):
            delete_while_busy(self.settings, lambda client: client.ssh_keys.delete(id_), InUse)


class SshKey(Resource, module="lambda", name="SshKey"):
    """An account SSH key. Type token `pulumi-python:dynamic/lambda:SshKey`.

    Give `public_key`, or omit it to generate an Ed25519 pair locally: `private_key` is then a secret output.
    """

    name: pulumi.Output[str]
    public_key: pulumi.Output[str]
    private_key: pulumi.Output[str | None]
    key_id: pulumi.Output[str]
    generated: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        *,
        name: pulumi.Input[str] | None = None,
        public_key: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "name": name if name is not None else f"{pulumi.get_stack()}-{resource_name}"[:NAME_MAX],
            "public_key": public_key,
            "private_key": None,
            "key_id": None,
            "generated": None,
            "owner": f"{pulumi.get_project()}/{pulumi.get_stack()}/{resource_name}",
        }  # marks generated pairs
        ours = pulumi.ResourceOptions(additional_secret_outputs=["private_key"])
        super().__init__(SshKeyProvider(), resource_name, props, pulumi.ResourceOptions.merge(opts, ours))

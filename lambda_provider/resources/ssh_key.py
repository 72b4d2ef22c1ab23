"""`SshKey`: an account SSH key, from a given public key or a pair generated locally (private half a secret).

Key names are unique per account, so a replacement that keeps the name deletes first. Create adopts a key that
already has this name and the same public key (an earlier run that lost its answer); another key under the same
name is an error, not something to overwrite.
"""

from __future__ import annotations

import logging
from typing import Any

import pulumi
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
)

from lambda_provider.client import InUse, LambdaClient, ServerError
from lambda_provider.client.errors import ConnectionFailed, Duplicate, InvalidParameters
from lambda_provider.client.models import SshKey as SshKeyRecord
from lambda_provider.resources import settings
from lambda_provider.resources.busy_retry import delete_while_busy
from lambda_provider.resources.values import is_unknown

log = logging.getLogger("lambda_provider.resources")
NAME_MAX = 64


def generate_key_pair(comment: str) -> tuple[str, str]:
    """(OpenSSH public key, OpenSSH private key) of a fresh Ed25519 pair."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return f"{public} {comment}", private


def _same_key(a: str, b: str) -> bool:
    """Compare key type and base64 body; comments may differ."""
    return a.split()[:2] == b.split()[:2]


class SshKeyProvider(ResourceProvider):
    def configure(self, req: ConfigureRequest) -> None:
        settings.configure_from_config(req.config)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        name = news.get("name")
        if not is_unknown(name) and (not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX):
            failures.append(CheckFailure("name", f"SSH key name must be 1-{NAME_MAX} characters"))
        public_key = news.get("public_key")
        if not is_unknown(public_key) and public_key is not None and (
                not isinstance(public_key, str) or len(public_key.split()) < 2 or len(public_key) > 4096):
            failures.append(CheckFailure("public_key", "public_key must be an OpenSSH public key line "
                                             "('ssh-ed25519 AAAA... comment'), at most 4096 characters"))
        return CheckResult(dict(news), failures)

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = []
        if is_unknown(news.get("name")) or news.get("name") != olds.get("name"):
            replaces.append("name")
        new_key = news.get("public_key")
        if is_unknown(new_key) or new_key is not None and not _same_key(new_key, olds.get("public_key") or ""):
            replaces.append("public_key")
        elif new_key is None and not olds.get("generated"):
            replaces.append("public_key")  # switching to a generated pair
        same_name = "name" not in replaces
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=same_name)

    def create(self, props: dict[str, Any]) -> CreateResult:
        name = props["name"]
        public_key, private_key = props.get("public_key"), None
        if not public_key:
            public_key, private_key = generate_key_pair(f"pulumi-{name}")
        with settings.current().client() as client:
            record = self._adopt(client, name, public_key) or self._add(client, name, public_key)
        outs = {"name": record.name, "public_key": record.public_key or public_key, "key_id": record.id,
                "generated": private_key is not None, "private_key": private_key}
        return CreateResult(record.id, outs)

    @staticmethod
    def _adopt(client: LambdaClient, name: str, public_key: str) -> SshKeyRecord | None:
        existing = client.ssh_keys.get_by_name(name)
        if existing is None:
            return None
        if _same_key(existing.public_key, public_key):
            return existing
        raise RuntimeError(f"an SSH key named {name!r} already exists in the account with a different public key; "
                           "choose another name, or delete that key if it is no longer used")

    def _add(self, client: LambdaClient, name: str, public_key: str) -> SshKeyRecord:
        try:
            return client.ssh_keys.create(name, public_key)
        except (Duplicate, InvalidParameters, ServerError, ConnectionFailed) as exc:
            # A lost answer or a duplicate-name refusal: the key may be there now.
            adopted = self._adopt(client, name, public_key)
            if adopted is not None:
                return adopted
            if isinstance(exc, (Duplicate, InvalidParameters)):
                raise
            return client.ssh_keys.create(name, public_key)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with settings.current().client() as client:
            record = next((k for k in client.ssh_keys.list() if k.id == id_), None)
        if record is None:
            return ReadResult(None, {})
        return ReadResult(id_, {**props, "name": record.name, "public_key": record.public_key, "key_id": record.id})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        # "Key is currently in use" while an instance using it still terminates.
        delete_while_busy(lambda client: client.ssh_keys.delete(id_), InUse)


class SshKey(Resource, module="lambda", name="SshKey"):
    """An account SSH key. Type token `pulumi-python:dynamic/lambda:SshKey`.

    Give `public_key`, or omit it to generate an Ed25519 pair locally: `private_key` is then a secret output.
    """

    name: pulumi.Output[str]
    public_key: pulumi.Output[str]
    private_key: pulumi.Output[str | None]
    key_id: pulumi.Output[str]
    generated: pulumi.Output[bool]

    def __init__(self, resource_name: str, *, name: pulumi.Input[str] | None = None,
                 public_key: pulumi.Input[str] | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"name": name if name is not None else f"{pulumi.get_stack()}-{resource_name}"[:NAME_MAX],
                 "public_key": public_key, "private_key": None, "key_id": None, "generated": None}
        ours = pulumi.ResourceOptions(additional_secret_outputs=["private_key"])
        super().__init__(SshKeyProvider(), resource_name, props, pulumi.ResourceOptions.merge(opts, ours))

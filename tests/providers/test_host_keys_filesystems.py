"""SshKey and Filesystem through the SDK's dynamic-provider host over gRPC."""

from __future__ import annotations

import grpc
import pulumi
import pytest
from cryptography.hazmat.primitives import serialization

from lambda_provider.client import FilesystemInUse, LaunchRequest
from lambda_provider.resources import Filesystem, SshKey
from tests.providers.emulator_api import Api
from tests.providers.host_fixtures import PUBLIC_KEY
from tests.providers.host_harness import CheckFailed, Engine, registrations

OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBEv8bRMtqyy4glDhdJRCja6IUC1uRDgSlB+/0Qt3LFk other@sae"


def _key(**args: object):
    return registrations(lambda: [SshKey("key", **args)])["key"]  # type: ignore[arg-type]


def _fs(**args: object):
    args.setdefault("region", "us-east-1")
    return registrations(lambda: [Filesystem("data", **args)])["data"]  # type: ignore[arg-type]


def test_ssh_key_lifecycle_and_replacements(api: Api, engine: Engine) -> None:
    reg = _key(name="laptop", public_key=PUBLIC_KEY)
    assert engine.up(reg) == "create"
    assert [k.name for k in api.client().ssh_keys.list()] == ["laptop"]
    assert engine.up(reg) == "same"

    engine.calls.clear()
    assert engine.up(_key(name="laptop", public_key=OTHER_KEY)) == "replace"  # same name: delete first
    assert engine.calls == ["Check", "Diff", "Check", "Delete", "Create"]
    assert [k.public_key for k in api.client().ssh_keys.list()] == [OTHER_KEY]

    engine.calls.clear()
    assert engine.up(_key(name="desktop", public_key=OTHER_KEY)) == "replace"  # new name: create first
    assert engine.calls == ["Check", "Diff", "Check", "Create", "Delete"]
    assert [k.name for k in api.client().ssh_keys.list()] == ["desktop"]

    api.client().ssh_keys.delete(engine.state[reg.urn].id)  # out of band
    assert engine.refresh(reg.urn) == "deleted"


def test_generated_key_pair_private_half_is_a_secret_output(api: Api, engine: Engine) -> None:
    reg = _key(name="generated")
    assert reg.additional_secret_outputs == ["private_key"]
    engine.up(reg)
    out = engine.outputs(reg)
    private = serialization.load_ssh_private_key(out["private_key"].encode(), password=None)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert out["generated"] is True
    assert out["public_key"].startswith(public.decode())
    assert engine.up(reg) == "same"  # no new pair on every up
    engine.destroy()
    assert api.client().ssh_keys.list() == []


def test_ssh_key_adopts_its_own_and_refuses_a_foreign_key(api: Api, engine: Engine) -> None:
    api.client().ssh_keys.create("laptop", PUBLIC_KEY)  # e.g. a create whose answer was lost
    reg = _key(name="laptop", public_key=PUBLIC_KEY)
    assert engine.up(reg) == "create"
    assert len(api.client().ssh_keys.list()) == 1
    api.client().ssh_keys.create("taken", OTHER_KEY)
    with pytest.raises(grpc.RpcError, match="already exists in the account with a different public key"):
        engine.up(registrations(lambda: [SshKey("k2", name="taken", public_key=PUBLIC_KEY)])["k2"])


def test_ssh_key_check_rejects_bad_input(api: Api, engine: Engine) -> None:
    with pytest.raises(CheckFailed, match="1-64 characters"):
        engine.up(_key(name="k" * 65, public_key=PUBLIC_KEY), preview=True)
    with pytest.raises(CheckFailed, match="OpenSSH public key"):
        engine.up(_key(name="k", public_key="not-a-key"), preview=True)


def test_ssh_key_delete_waits_while_an_instance_still_uses_it(api: Api, engine: Engine) -> None:
    reg = _key(name="laptop", public_key=PUBLIC_KEY)
    engine.up(reg)
    client = api.client()
    instance_id = client.instances.launch(LaunchRequest("us-east-1", "gpu_1x_a10", "laptop"))
    api.wait_for(lambda: client.instances.get(instance_id).status in ("booting", "active"))
    client.instances.terminate([instance_id])
    engine.delete(reg.urn)  # retries "Key is currently in use" until the instance is terminated
    assert client.ssh_keys.list() == []


def test_filesystem_lifecycle_adopt_and_region_replace(api: Api, engine: Engine) -> None:
    reg = _fs()
    assert engine.up(reg, preview=True) == "create"
    assert engine.up(reg) == "create"
    out = engine.outputs(reg)
    assert out["mount_point"] == "/lambda/nfs/data"
    assert out["region"] == "us-east-1"
    assert out["filesystem_id"]
    assert engine.up(reg) == "same"

    engine.calls.clear()
    moved = _fs(region="us-west-1")
    assert engine.up(moved) == "replace"
    assert engine.calls[-2:] == ["Delete", "Create"]
    assert [(f.name, f.region.name) for f in api.client().filesystems.list()] == [("data", "us-west-1")]

    api.client().filesystems.delete(engine.state[reg.urn].id)
    assert engine.refresh(reg.urn) == "deleted"

    api.client().filesystems.create("data", "us-west-1")  # exists already: adopted, not duplicated
    assert engine.up(moved) == "create"
    assert len(api.client().filesystems.list()) == 1
    api.client().filesystems.create("elsewhere", "us-east-1")
    with pytest.raises(grpc.RpcError, match="already exists in us-east-1, not us-west-1"):
        engine.up(registrations(lambda: [Filesystem("elsewhere", region="us-west-1")])["elsewhere"])


def test_filesystem_kept_on_delete_cannot_move_regions_under_its_name(api: Api, engine: Engine) -> None:
    def kept(region: str):
        return registrations(
            lambda: [Filesystem("data", region=region, opts=pulumi.ResourceOptions(retain_on_delete=True))]
        )["data"]

    assert engine.up(kept("us-east-1")) == "create"
    with pytest.raises(
        CheckFailed,
        match=r"region: filesystem 'data' is kept when replaced .* keep its name in "
        r"us-east-1 .*new name \(e.g. 'data-us-west-1'\)",
    ):
        engine.up(kept("us-west-1"), preview=True)
    assert [(f.name, f.region.name) for f in api.client().filesystems.list()] == [("data", "us-east-1")]


def test_filesystem_check_rejects_bad_input(api: Api, engine: Engine) -> None:
    with pytest.raises(CheckFailed, match="must start with a letter"):
        engine.up(_fs(name="1data"), preview=True)
    with pytest.raises(CheckFailed, match="unknown region 'mars-1'"):
        engine.up(_fs(region="mars-1"), preview=True)


def test_filesystem_delete_retries_while_an_instance_is_terminating(api: Api, engine: Engine) -> None:
    reg = _fs()
    engine.up(reg)
    client = api.client()
    client.ssh_keys.create("k", PUBLIC_KEY)
    instance_id = client.instances.launch(LaunchRequest("us-east-1", "gpu_1x_a10", "k", file_system_names=["data"]))
    client.instances.terminate([instance_id])
    with pytest.raises(FilesystemInUse):  # "terminating" still counts as in use
        client.filesystems.delete(engine.state[reg.urn].id)
    engine.delete(reg.urn)
    assert client.filesystems.list() == []


CREATES = {  # resource registration, the POST that creates it, how to list what exists
    "key": (lambda: _key(name="laptop", public_key=PUBLIC_KEY), "^/ssh-keys$", lambda c: c.ssh_keys.list()),
    "generated key": (lambda: _key(name="laptop"), "^/ssh-keys$", lambda c: c.ssh_keys.list()),
    "filesystem": (_fs, "^/filesystems$", lambda c: c.filesystems.list()),
}


@pytest.mark.parametrize("kind", CREATES)
def test_a_create_whose_answer_is_lost_adopts_what_it_created(api: Api, engine: Engine, kind: str) -> None:
    make, path, listed = CREATES[kind]
    rule = api.add_fault(action="drop_response", method="POST", path=path, count=1)  # created, answer never sent
    reg = make()
    assert engine.up(reg) == "create"
    assert api.fault(rule["id"])["fired"] == 1
    assert [r.id for r in listed(api.client())] == [engine.state[reg.urn].id]


@pytest.mark.parametrize("kind", CREATES)
def test_a_create_refused_by_5xx_is_sent_again(api: Api, engine: Engine, kind: str) -> None:
    make, path, listed = CREATES[kind]
    rule = api.add_fault(action="error", method="POST", path=path, status=502, body="html", count=3)
    reg = make()
    assert engine.up(reg) == "create"
    assert api.fault(rule["id"])["fired"] == 3
    assert [r.id for r in listed(api.client())] == [engine.state[reg.urn].id]


def _orphan_of_a_lost_generated_pair(api: Api) -> str:
    """A key under the generated key's name whose pair was generated for this very resource by a create that was
    killed before the engine recorded it (comment `pulumi:<project>/<stack>/<resource>`)."""
    lost = OTHER_KEY.rsplit(" ", 1)[0] + " pulumi:sae/test/key"
    return api.client().ssh_keys.create("laptop", lost).id


def test_a_generated_key_replaces_the_orphan_of_a_lost_pair(api: Api, engine: Engine) -> None:
    orphan = _orphan_of_a_lost_generated_pair(api)
    reg = _key(name="laptop")
    assert engine.up(reg) == "create"
    out = engine.outputs(reg)
    private = serialization.load_ssh_private_key(out["private_key"].encode(), password=None)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert [(k.id, k.public_key.split()[:2]) for k in api.client().ssh_keys.list()] == [
        (engine.state[reg.urn].id, public.decode().split()[:2])
    ]
    assert orphan != engine.state[reg.urn].id


def test_a_generated_key_leaves_an_orphan_that_instances_use_and_says_what_to_do(api: Api, engine: Engine) -> None:
    _orphan_of_a_lost_generated_pair(api)
    instance_id = api.client().instances.launch(LaunchRequest("us-east-1", "gpu_1x_a10", "laptop"))
    with pytest.raises(grpc.RpcError, match="instances still use it: terminate the instances launched with this key"):
        engine.up(_key(name="laptop"))
    assert [k.name for k in api.client().ssh_keys.list()] == ["laptop"]
    api.client().instances.terminate([instance_id])


def test_a_generated_key_refuses_a_foreign_key_under_its_name(api: Api, engine: Engine) -> None:
    api.client().ssh_keys.create("laptop", OTHER_KEY)  # no marker of ours: someone else's
    with pytest.raises(grpc.RpcError, match="already exists in the account with a different public key"):
        engine.up(_key(name="laptop"))
    assert [k.public_key for k in api.client().ssh_keys.list()] == [OTHER_KEY]

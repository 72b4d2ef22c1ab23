"""The providers' base class (lambda_provider/resources/provider.py): settings from `configure` kept on the provider and
never pickled, each provider at the module path that state pickles name, and the diff each derives from its keys."""

from __future__ import annotations

import base64

import dill
import pytest
from pulumi.dynamic import ConfigureRequest
from pulumi.dynamic.config import Config
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.output import Unknown

from lambda_provider.resources.filesystem import FilesystemProvider
from lambda_provider.resources.firewall_ruleset import FirewallRulesetProvider
from lambda_provider.resources.instance import InstanceProvider
from lambda_provider.resources.provider import LambdaProvider
from lambda_provider.resources.ssh_key import SshKeyProvider

API_KEY = "secret_provider-base-test_0a1b2c3d4e5f6789.0123456789abcdef01234567"
# Pickled by reference into every resource's `__provider` in state: moving or renaming one breaks refresh and
# destroy of every stack created before (../shared/docs/pulumi-notes.md §1.4). Change a row only with a migration.
PICKLED_PATHS = {
    SshKeyProvider: ("lambda_provider.resources.ssh_key", "SshKeyProvider"),
    FilesystemProvider: ("lambda_provider.resources.filesystem", "FilesystemProvider"),
    FirewallRulesetProvider: ("lambda_provider.resources.firewall_ruleset", "FirewallRulesetProvider"),
    InstanceProvider: ("lambda_provider.resources.instance", "InstanceProvider"),
}
PROVIDERS = sorted(PICKLED_PATHS, key=lambda cls: cls.__name__)


def configured(cls: type[LambdaProvider], **config: str) -> LambdaProvider:
    provider = cls()
    provider.configure(ConfigureRequest(Config(config, "lambda-sae")))
    return provider


def pickled(provider: LambdaProvider) -> bytes:
    """What the program writes into `__provider` (the SDK's own serializer), decoded."""
    return base64.b64decode(serialize_provider(provider))


@pytest.mark.parametrize("cls", PROVIDERS, ids=lambda c: c.__name__)
def test_each_provider_lives_at_the_module_path_its_pickles_name(cls: type[LambdaProvider]) -> None:
    assert (cls.__module__, cls.__qualname__) == PICKLED_PATHS[cls]


@pytest.mark.parametrize("cls", PROVIDERS, ids=lambda c: c.__name__)
def test_the_pickle_names_the_class_by_reference(cls: type[LambdaProvider]) -> None:
    module, name = PICKLED_PATHS[cls]
    data = pickled(cls())
    assert module.encode() in data
    assert name.encode() in data
    assert b"def diff" not in data, "the class itself is not pickled by value"
    assert b"replace_keys" not in data, "the class itself is not pickled by value"


@pytest.mark.parametrize("cls", PROVIDERS, ids=lambda c: c.__name__)
def test_the_pickle_unpickles_to_the_same_class(cls: type[LambdaProvider]) -> None:
    assert type(dill.loads(pickled(cls()))) is cls


@pytest.mark.parametrize("cls", PROVIDERS, ids=lambda c: c.__name__)
def test_a_configured_provider_pickles_without_its_settings(cls: type[LambdaProvider]) -> None:
    provider = configured(cls, **{"lambda:apiKey": API_KEY, "lambda:apiUrl": "http://127.0.0.1:9/api/v1"})
    assert pickled(provider) == pickled(cls())


def test_configure_keeps_the_settings_on_the_provider() -> None:
    provider = configured(SshKeyProvider, **{"lambda:apiKey": API_KEY, "lambda:pollInterval": "0.5"})
    assert provider.settings.api_key == API_KEY
    assert provider.settings.poll_interval == 0.5


def test_two_providers_keep_their_own_settings() -> None:
    first = configured(FilesystemProvider, **{"lambda:apiKey": API_KEY, "lambda:apiUrl": "http://127.0.0.1:1/v1"})
    second = configured(FilesystemProvider, **{"lambda:apiKey": API_KEY, "lambda:apiUrl": "http://127.0.0.1:2/v1"})
    assert first.settings.api_url == "http://127.0.0.1:1/v1"
    assert second.settings.api_url == "http://127.0.0.1:2/v1"


def test_an_unconfigured_provider_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDA_API_URL", "http://127.0.0.1:3/api/v1")
    assert FirewallRulesetProvider().settings.api_url == "http://127.0.0.1:3/api/v1"


RULESET = {"name": "fw", "region": "us-east-1", "rules": [{"protocol": "tcp", "port_range": [22, 22]}]}
FILESYSTEM = {"name": "ckpt", "region": "us-east-1"}
KEY = {"name": "k", "public_key": "ssh-ed25519 AAAAC3Nz first", "generated": False}


def diff_of(provider: LambdaProvider, olds: dict, **changes: object) -> tuple[bool, list[str], bool]:
    result = provider.diff("id", olds, {**olds, **changes})
    return result.changes, result.replaces, result.delete_before_replace


def test_a_ruleset_updates_its_name_and_rules_in_place() -> None:
    assert diff_of(FirewallRulesetProvider(), RULESET, name="fw2", rules=[]) == (True, [], False)


def test_a_ruleset_in_another_region_is_replaced_beside_the_old_one() -> None:
    assert diff_of(FirewallRulesetProvider(), RULESET, region="us-west-1") == (True, ["region"], False)


def test_an_unchanged_ruleset_has_no_changes() -> None:
    assert diff_of(FirewallRulesetProvider(), RULESET) == (False, [], False)


def test_a_filesystem_moved_under_its_name_is_deleted_first() -> None:
    assert diff_of(FilesystemProvider(), FILESYSTEM, region="us-west-1") == (True, ["region"], True)


def test_a_renamed_filesystem_is_created_first() -> None:
    assert diff_of(FilesystemProvider(), FILESYSTEM, name="ckpt2") == (True, ["name"], False)


def test_an_unknown_input_counts_as_changed() -> None:
    assert diff_of(FilesystemProvider(), FILESYSTEM, region=Unknown()) == (True, ["region"], True)


def test_a_public_key_with_another_comment_is_the_same_key() -> None:
    assert diff_of(SshKeyProvider(), KEY, public_key="ssh-ed25519 AAAAC3Nz second") == (False, [], True)


def test_a_given_key_giving_way_to_a_generated_pair_replaces_it() -> None:
    assert diff_of(SshKeyProvider(), KEY, public_key=None) == (True, ["public_key"], True)

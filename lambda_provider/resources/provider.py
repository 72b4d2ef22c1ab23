"""`LambdaProvider`: what every Lambda dynamic provider shares -- its settings, its client, and a diff derived from
the keys it declares.

Settings: the dynamic-provider host unpickles a provider from the `__provider` input and calls `configure()` once on
it, with the whole stack config (../shared/docs/pulumi-notes.md §1.5), before any other method; the same object then
serves every call for that pickle. So `configure` keeps the settings on the provider itself (no module-global
store), and `__getstate__` leaves them out of any pickle: the API key never reaches `__provider` or the state. A
provider never configured (tests, scripts) reads the environment (lambda_provider/resources/settings.py).

Diff: `replace_keys` and `update_keys` name the inputs whose change replaces or updates the resource; `changed`
says whether one changed (unknown during preview counts as changed); `delete_first` says when a replacement
deletes the old object before creating the new one. A provider with rules of its own overrides `changed` or
`changed_keys`; the `DiffResult` is always built here.

Provider classes are pickled by reference (module path + class name): subclasses must stay where they are
(tests/providers/test_provider_base.py pins them).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pulumi.dynamic import ConfigureRequest, DiffResult, ResourceProvider

from lambda_provider.client import LambdaClient
from lambda_provider.resources.settings import ProviderSettings, settings_from
from lambda_provider.resources.values import is_unknown

DeleteFirst = Literal["never", "always", "when-name-kept"]


class LambdaProvider(ResourceProvider):
    replace_keys: ClassVar[tuple[str, ...]] = ()
    update_keys: ClassVar[tuple[str, ...]] = ()
    # "when-name-kept": names are unique per account, so a replacement that keeps the `name` must delete first.
    delete_first: ClassVar[DeleteFirst] = "never"

    _settings: ProviderSettings | None = None

    def configure(self, req: ConfigureRequest) -> None:
        self._settings = settings_from(req.config.get)

    @property
    def settings(self) -> ProviderSettings:
        """The settings `configure` read from the stack config, else the environment's."""
        return self._settings if self._settings is not None else settings_from(lambda _key: None)

    def client(self) -> LambdaClient:
        return self.settings.client()

    def __getstate__(self) -> dict[str, Any] | None:
        state = {k: v for k, v in self.__dict__.items() if k != "_settings"}
        return state or None  # None, as for a plain object: an unconfigured provider pickles as it always did

    def changed(self, key: str, olds: dict[str, Any], news: dict[str, Any]) -> bool:
        value = news.get(key)
        return is_unknown(value) or value != olds.get(key)

    def changed_keys(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> tuple[list[str], list[str]]:
        """(keys whose change replaces, keys whose change updates in place)."""
        replaces = [k for k in self.replace_keys if self.changed(k, olds, news)]
        updates = [k for k in self.update_keys if k not in replaces and self.changed(k, olds, news)]
        return replaces, updates

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces, updates = self.changed_keys(id_, olds, news)
        if self.delete_first == "always":
            delete_first = True
        elif self.delete_first == "when-name-kept":
            delete_first = "name" not in replaces
        else:
            delete_first = False
        return DiffResult(changes=bool(replaces or updates), replaces=replaces, delete_before_replace=delete_first)

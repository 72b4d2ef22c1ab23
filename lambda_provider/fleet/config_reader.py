"""The stack config's reader: it collects every problem, as `key: problem -- fix`, instead of stopping at the first.

Shared by the parts of lambda_provider/fleet/config.py (config_keys, config_data, config_training beside it).
"""

from __future__ import annotations

import re
from typing import Any

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,30}$")  # node group and run names


class Reader:
    """Collects problems instead of stopping at the first one."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, key: str, problem: str, fix: str) -> None:
        self.problems.append(f"{key}: {problem} -- {fix}")

    def mapping(self, raw: Any, key: str, known: set[str]) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.fail(key, f"expected a mapping, got {type(raw).__name__}", f"write {key} as key: value lines")
            return {}
        for unknown in sorted(set(raw) - known):
            self.fail(f"{key}.{unknown}", "unknown key", f"use one of {', '.join(sorted(known))}")
        return raw

    def number(
        self,
        raw: dict[str, Any],
        key: str,
        path: str,
        *,
        required: bool,
        default: float | None = None,
        integer: bool = False,
        minimum: float = 0.0,
        strict: bool = True,
    ) -> Any:
        value = raw.get(key)
        if value is None:
            if required:
                self.fail(f"{path}.{key}", "missing", f"set {path}.{key} to a number")
            return default
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            kind = "an integer" if integer else "a number"
            self.fail(f"{path}.{key}", f"expected {kind}, got {value!r}", f"set {path}.{key} to {kind}")
            return default
        if value < minimum or (strict and value == minimum):
            bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
            self.fail(f"{path}.{key}", f"must be {bound}, got {value!r}", f"set {path}.{key} {bound}")
            return default
        return value

    def string(
        self, raw: dict[str, Any], key: str, path: str, *, required: bool, default: str | None = None
    ) -> str | None:
        value = raw.get(key)
        if value is None:
            if required:
                self.fail(f"{path}.{key}", "missing", f"set {path}.{key}")
            return default
        if not isinstance(value, str) or not value:
            self.fail(f"{path}.{key}", f"expected a non-empty string, got {value!r}", f"set {path}.{key} to text")
            return default
        return value

    def boolean(self, raw: dict[str, Any], key: str, path: str, default: bool) -> bool:
        value = raw.get(key, default)
        if not isinstance(value, bool):
            self.fail(f"{path}.{key}", f"expected true or false, got {value!r}", f"set {path}.{key}: true/false")
            return default
        return value

"""Deterministic names and the ownership tags that let a later run find (and adopt) what an earlier one launched."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from lambda_provider.domain import NAME_MAX, TAG_VALUE_MAX

PROJECT_TAG, STACK_TAG, RESOURCE_TAG, SPEC_TAG = "pulumi-project", "pulumi-stack", "pulumi-resource", "pulumi-spec"


def _digest(text: str, length: int = 10) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def fit(text: str, limit: int) -> str:
    """`text` if short enough, else a prefix plus a hash of the whole (still deterministic and distinct)."""
    if len(text) <= limit:
        return text
    suffix = _digest(text)
    return f"{text[: limit - len(suffix) - 1]}-{suffix}"


def default_instance_name(stack: str, resource_name: str) -> str:
    return fit(f"{stack}-{resource_name}", NAME_MAX)


def owner_tags(owner: Mapping[str, str]) -> dict[str, str]:
    """Tags naming the project, stack and resource that own an instance."""
    return {
        PROJECT_TAG: fit(str(owner.get("project", "")), TAG_VALUE_MAX),
        STACK_TAG: fit(str(owner.get("stack", "")), TAG_VALUE_MAX),
        RESOURCE_TAG: fit(str(owner.get("resource", "")), TAG_VALUE_MAX),
    }


def spec_fingerprint(spec: Mapping[str, Any]) -> str:
    """A short stable hash of the launch spec (covers what the instance record does not echo: image, user data)."""
    return _digest(json.dumps(spec, sort_keys=True, default=str), 16)

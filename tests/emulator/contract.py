"""Validate bodies against the OpenAPI 1.10.0 response schemas (JSON Schema 2020-12 inside OpenAPI 3.1)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

# CI clones the repo with shared/ beside it: <clone>/../shared/lambda-cloud.
SHARED_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "lambda-cloud"
SPEC_PATH = SHARED_DIR / "openapi-1.10.0.json"
RECORDED_DIR = SHARED_DIR / "recorded"
_SPEC_URI = "urn:lambda-cloud-openapi-1.10.0"


@cache
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


@cache
def _registry() -> Registry:
    return Registry().with_resource(_SPEC_URI, Resource.from_contents(spec(), default_specification=DRAFT202012))


@cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    templates = []
    for template in spec()["paths"]:
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        templates.append((re.compile(f"^{pattern}$"), template))
    # Literal paths before templated ones: /firewall-rulesets/global is not /firewall-rulesets/{id}.
    templates.sort(key=lambda t: t[1].count("{"))
    return templates


def path_template(path: str) -> str | None:
    for pattern, template in _templates():
        if pattern.match(path):
            return template
    return None


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def schema_ref(template: str, method: str, status: int) -> dict[str, Any] | None:
    operation = spec()["paths"][template].get(method.lower())
    if operation is None or str(status) not in operation["responses"]:
        return None
    pointer = _pointer(
        "paths", template, method.lower(), "responses", str(status), "content", "application/json", "schema"
    )
    return {"$ref": f"{_SPEC_URI}#/{pointer}"}


def validate_response(method: str, path: str, status: int, body: Any) -> bool:
    """Raise if `body` violates the declared schema; False when the spec declares no schema for this status."""
    template = path_template(path)
    assert template is not None, f"{path} is not a path of the spec"
    ref = schema_ref(template, method, status)
    if ref is None:
        return False
    jsonschema.Draft202012Validator(ref, registry=_registry()).validate(body)
    return True


def validate_component(name: str, instance: Any) -> None:
    ref = {"$ref": f"{_SPEC_URI}#/components/schemas/{name}"}
    jsonschema.Draft202012Validator(ref, registry=_registry()).validate(instance)

"""Validate bodies against the OpenAPI 1.10.0 response schemas (JSON Schema 2020-12 inside OpenAPI 3.1).

The spec and the recorded live responses are not in this repository: they are read from `$LAMBDA_OPENAPI_SPEC` or
from `../shared/lambda-cloud/openapi-1.10.0.json` beside the clone, the recorded responses from `recorded/` beside
the spec. A test that needs them and finds none skips, and fails under `CI=true`, saying how to get them. A spec
whose sha256 is not the pinned one fails: its schemas are not the ones these tests were written against.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_ENV = "LAMBDA_OPENAPI_SPEC"
DEFAULT_SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "lambda-cloud" / "openapi-1.10.0.json"
# Lambda's published "Lambda Cloud API" v1.10.0 (docs.lambda.ai/api/cloud/spec.json); README "Tests" pins it too.
SPEC_SHA256 = "6163162cf92eb680111eba98f153701b76ab0711ab832d58fa6de2e9e1dda3ea"
_SPEC_URI = "urn:lambda-cloud-openapi-1.10.0"


def spec_location() -> Path:
    return Path(os.environ[SPEC_ENV]) if os.environ.get(SPEC_ENV) else DEFAULT_SPEC


def _missing(what: str, path: Path) -> NoReturn:
    message = (
        f"{what} not found at {path}: clone this repository with shared/ beside it "
        f"(../shared/lambda-cloud/openapi-1.10.0.json and recorded/), or set {SPEC_ENV} to a copy of "
        f"openapi-1.10.0.json (sha256 {SPEC_SHA256}) with the recorded/ folder beside it; README 'Tests' "
        "says where they come from"
    )
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def spec_path() -> Path:
    """The pinned spec's path; skips (fails under CI=true) when it is missing, fails when it is another file."""
    path = spec_location()
    if not path.is_file():
        _missing("the Lambda Cloud OpenAPI 1.10.0 spec", path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SPEC_SHA256:
        pytest.fail(
            f"{path} is not the pinned Lambda Cloud OpenAPI 1.10.0 spec (sha256 {digest}, expected "
            f"{SPEC_SHA256}); point {SPEC_ENV} at the pinned file",
            pytrace=False,
        )
    return path


def recorded(name: str) -> Any:
    """A recorded live response from `recorded/` beside the spec."""
    path = spec_location().parent / "recorded" / name
    if not path.is_file():
        _missing(f"the recorded response {name}", path)
    return json.loads(path.read_text())


@cache
def spec() -> dict[str, Any]:
    return json.loads(spec_path().read_text())


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

"""Request validation: pydantic models (schemas.py) in, `global/invalid-parameters` with the live texts out.

The formatter writes a pydantic error as FastAPI-backed Lambda does: `<loc>: <msg>`, the location dotted
(`tags.0.key: String should match pattern '^[a-z][a-z0-9-:]+$'`, `name: Field required`), the first error only;
a suggestion names the fix where one is known.
"""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from .errors import ApiError, invalid_parameters

ModelT = TypeVar("ModelT", bound=BaseModel)

# Suggestions by top-level field (the message says what is wrong; this says how to fix it).
_SUGGESTIONS = {
    "tags": "Use lowercase letters, digits, '-' and ':' in tag keys, starting with a letter.",
    "file_system_mounts": "Mount under /home, /lambda/nfs or /data.",
    "ssh_key_names": "Pass exactly one name in ssh_key_names.",
    "public_key": "Send an OpenSSH public key line such as 'ssh-ed25519 AAAA... comment'.",
}


def error_text(error: ErrorDetails) -> str:
    """One pydantic error as the live API words it."""
    loc = ".".join(str(part) for part in error["loc"])
    return f"{loc}: {error['msg']}" if loc else error["msg"]


def invalid(exc: ValidationError, prefix: tuple[str, ...] = ()) -> ApiError:
    """The first error of `exc` as a 400; `prefix` is the location of what was validated (a single field)."""
    first = exc.errors(include_url=False)[0]
    first["loc"] = (*prefix, *first["loc"])
    field = str(first["loc"][0]) if first["loc"] else ""
    suggestion = f"Add `{field}` to the request body." if first["type"] == "missing" else _SUGGESTIONS.get(field)
    return invalid_parameters(error_text(first), suggestion)


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid_parameters(
            "Request body must be a JSON object.", "Send a JSON object with Content-Type: application/json."
        )
    return body


def parse(model: type[ModelT], body: Any) -> ModelT:
    """The whole body as `model`; ApiError 400 with the first error's text."""
    try:
        return model.model_validate(require_object(body))
    except ValidationError as exc:
        raise invalid(exc) from None


@cache
def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    return TypeAdapter(model.model_fields[name].rebuild_annotation())


class Staged:
    """A body whose fields are validated one at a time, when the caller asks for them: launch checks its fields
    in the live order, between lookups (a bad tag key is reported only after the filesystems were found)."""

    def __init__(self, model: type[BaseModel], body: Any) -> None:
        self._model = model
        self._body = require_object(body)

    def __getitem__(self, name: str) -> Any:
        field = self._model.model_fields[name]
        if name not in self._body:
            if field.is_required():
                raise invalid_parameters(f"{name}: Field required", f"Add `{name}` to the request body.")
            return field.get_default(call_default_factory=True)
        try:
            return _field_adapter(self._model, name).validate_python(self._body[name])
        except ValidationError as exc:
            raise invalid(exc, (name,)) from None

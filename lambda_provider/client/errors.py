"""Typed errors for the Lambda Cloud API, keyed by the `code` of the error envelope.

The API answers errors as `{"error": {"code", "message", "suggestion"}}`; clients must switch on `code`, never on
`message`. Edge proxies can answer with non-JSON bodies (HTML 5xx pages, a rate-limit ban page): those become
errors classified by HTTP status: an HTML page is summarised as `HTTP 502 from /path (HTML error page)` (never
put into a message), other text is kept, truncated.
"""

from __future__ import annotations

import json
from typing import Any


class LambdaError(Exception):
    """Base class of every error raised by the client. Whether one may be retried: lambda_provider/client/retry.py."""


class ApiError(LambdaError):
    """An error answer from the API (or from an edge proxy in front of it)."""

    code: str = ""

    def __init__(self, message: str, *, code: str = "", suggestion: str = "", status: int = 0) -> None:
        self.code = code or type(self).code
        self.message = message
        self.suggestion = suggestion
        self.status = status
        if code:
            prefix = code
        elif status:  # no code in the answer: say the status (edge pages already do, as `HTTP <status> from ...`)
            prefix = "" if message.startswith(f"HTTP {status}") else f"HTTP {status}"
        else:
            prefix = type(self).code
        text = f"{prefix}: {message}" if prefix else message
        if suggestion:
            text += f" ({suggestion})"
        super().__init__(text)


class InvalidApiKey(ApiError):
    code = "global/invalid-api-key"


class Forbidden(ApiError):
    code = "global/forbidden"


class AccountInactive(ApiError):
    code = "global/account-inactive"


class InvalidBillingAddress(ApiError):
    code = "global/invalid-address"


class InvalidParameters(ApiError):
    code = "global/invalid-parameters"


class NotFound(ApiError):
    """`global/object-does-not-exist` or `global/not-found`."""

    code = "global/object-does-not-exist"


class QuotaExceeded(ApiError):
    code = "global/quota-exceeded"


class Duplicate(ApiError):
    code = "global/duplicate"


class Conflict(ApiError):
    code = "global/conflict"


class InsufficientCapacity(ApiError):
    code = "instance-operations/launch/insufficient-capacity"


class FilesystemInWrongRegion(ApiError):
    code = "instance-operations/launch/file-system-in-wrong-region"


class InUse(ApiError):
    """A filesystem, SSH key or firewall ruleset still referenced by an instance."""


class FilesystemInUse(InUse):
    code = "filesystems/filesystem-in-use"


class SshKeyInUse(InUse):
    code = "ssh-keys/key-in-use"


class FirewallRulesetInUse(InUse):
    code = "firewall-rulesets/firewall-ruleset-in-use"


class RateLimited(ApiError):
    code = "global/rate-limited"


class ServerError(ApiError):
    """HTTP 5xx, `global/internal-error`, `global/unknown` or a `provider/*` code: the server may have acted."""

    code = "global/internal-error"


class ConnectionFailed(LambdaError):
    """No HTTP answer at all: refused, reset, timed out or dropped. The server may have acted."""

    def __init__(self, message: str, *, sent: bool) -> None:
        self.sent = sent
        super().__init__(message)


class AmbiguousLaunch(LambdaError):
    """A launch whose outcome is unknown and could not be reconciled by listing instances."""


_BY_CODE: dict[str, type[ApiError]] = {
    cls.code: cls
    for cls in (
        InvalidApiKey,
        Forbidden,
        AccountInactive,
        InvalidBillingAddress,
        InvalidParameters,
        NotFound,
        QuotaExceeded,
        Duplicate,
        Conflict,
        InsufficientCapacity,
        FilesystemInWrongRegion,
        FilesystemInUse,
        SshKeyInUse,
        FirewallRulesetInUse,
        RateLimited,
        ServerError,
    )
}
_BY_CODE["global/not-found"] = NotFound
_BY_CODE["global/unknown"] = ServerError

_BY_STATUS: dict[int, type[ApiError]] = {
    401: InvalidApiKey,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    429: RateLimited,
}


def _class_for(code: str, status: int, message: str) -> type[ApiError]:
    if status == 429:
        return RateLimited
    # The live API refuses to delete a key still in use with HTTP 400 "Key is currently in use, cannot delete" and
    # no documented code; the spec allows only invalid-parameters there.
    in_use = status == 400 and "in use" in message.lower()
    if code in _BY_CODE and not (in_use and code == InvalidParameters.code):
        return _BY_CODE[code]
    if code.startswith("provider/") or status >= 500:
        return ServerError
    if in_use:
        return InUse
    return _BY_STATUS.get(status, ApiError)


def describe_body(status: int, path: str, body: bytes | str, content_type: str = "") -> str:
    """A one-line account of a non-envelope answer body: an HTML page is never quoted, other text is truncated."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    where = f"HTTP {status} from {path}" if path else f"HTTP {status}"
    snippet = " ".join(text.split())
    if "html" in content_type.lower() or snippet[:1] == "<":
        return f"{where} (HTML error page)"
    if not snippet:
        return f"{where} (empty body)"
    return f"{where}: non-JSON error body ({content_type or 'no content type'}): {snippet[:300]}"


def error_from_response(status: int, body: bytes | str, content_type: str = "", path: str = "") -> ApiError:
    """Build the typed error for an HTTP error answer (JSON envelope or not) to a request for `path`."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    envelope: Any = None
    try:
        envelope = json.loads(text) if text.strip() else None
    except ValueError:
        envelope = None
    err = envelope.get("error") if isinstance(envelope, dict) else None
    if isinstance(err, dict):
        code = str(err.get("code") or "")
        message = str(err.get("message") or "")
        suggestion = str(err.get("suggestion") or "")
    else:
        code, suggestion = "", ""
        message = describe_body(status, path, text, content_type)
    cls = _class_for(code, status, message)
    return cls(message, code=code, suggestion=suggestion, status=status)

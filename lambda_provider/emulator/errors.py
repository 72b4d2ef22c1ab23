"""API errors with the codes, statuses and default texts of the spec (../shared/lambda-cloud/NOTES.md §5.1)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, suggestion: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.suggestion = suggestion

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.suggestion is not None:
            error["suggestion"] = self.suggestion
        return {"error": error}


def invalid_api_key() -> ApiError:
    return ApiError(
        401,
        "global/invalid-api-key",
        "API key was invalid, expired, or deleted.",
        "Check your API key or create a new one, then try again.",
    )


def invalid_parameters(message: str = "Invalid request data.", suggestion: str | None = None) -> ApiError:
    return ApiError(400, "global/invalid-parameters", message, suggestion)


def not_found_route() -> ApiError:
    return ApiError(404, "global/not-found", "The requested resource was not found.")


def instance_not_found() -> ApiError:
    return ApiError(
        404,
        "global/object-does-not-exist",
        "Specified instance does not exist.",
        "Check the instance ID and try again.",
    )


def launch_resource_not_found(message: str, suggestion: str, status: int = 400) -> ApiError:
    return ApiError(status, "global/object-does-not-exist", message, suggestion)


def filesystem_not_found() -> ApiError:
    return ApiError(
        404, "global/object-does-not-exist", "Filesystem was not found.", "Check the filesystem ID and try again."
    )


def ssh_key_not_found() -> ApiError:
    # The spec declares only global/not-found for DELETE /ssh-keys/{id}; text UNCONFIRMED.
    return ApiError(404, "global/not-found", "SSH key was not found.", "Check the SSH key ID and try again.")


def ruleset_not_found() -> ApiError:
    return ApiError(
        404,
        "global/object-does-not-exist",
        "Firewall ruleset does not exist or you do not have permission to access it.",
        "Check your firewall ruleset ID and try again.",
    )


def insufficient_capacity() -> ApiError:
    return ApiError(
        400,
        "instance-operations/launch/insufficient-capacity",
        "Not enough capacity to fulfill launch request.",
        "Choose an instance type with capacity in the region, or try again later.",
    )


def quota_exceeded() -> ApiError:
    return ApiError(400, "global/quota-exceeded", "Quota exceeded.", "Contact Support to increase your quota.")


def conflict() -> ApiError:
    return ApiError(409, "global/conflict", "The request conflicts with the current state of the resource.")


def rate_limited() -> ApiError:
    # Status 429 is documented; the body is not (../shared/lambda-cloud/NOTES.md §5.1). We send the usual envelope with
    # our own code.
    return ApiError(
        429, "global/rate-limited", "Too many requests.", "Slow down: about 1 request/s, 1 launch per 12 s."
    )

"""Lambda Cloud REST API client (requests-based, typed, paced, never blindly retrying a launch)."""

from lambda_provider.client.client import LambdaClient
from lambda_provider.client.errors import (
    AmbiguousLaunch,
    ApiError,
    Conflict,
    ConnectionFailed,
    Duplicate,
    FilesystemInUse,
    InsufficientCapacity,
    InUse,
    InvalidApiKey,
    InvalidParameters,
    LambdaError,
    NotFound,
    QuotaExceeded,
    RateLimited,
    ServerError,
    SshKeyInUse,
)
from lambda_provider.client.instances import LaunchRequest, ReconcilePolicy
from lambda_provider.client.models import Filesystem, Image, Instance, InstanceType, InstanceTypeAvailability, SshKey
from lambda_provider.client.ratelimit import RateLimiter, shared_limiter
from lambda_provider.client.transport import DEFAULT_BASE_URL, RetryPolicy

__all__ = [
    "DEFAULT_BASE_URL",
    "AmbiguousLaunch",
    "ApiError",
    "ConnectionFailed",
    "Conflict",
    "Duplicate",
    "Filesystem",
    "FilesystemInUse",
    "Image",
    "InUse",
    "Instance",
    "InstanceType",
    "InstanceTypeAvailability",
    "InsufficientCapacity",
    "InvalidApiKey",
    "InvalidParameters",
    "LambdaClient",
    "LambdaError",
    "LaunchRequest",
    "NotFound",
    "QuotaExceeded",
    "RateLimited",
    "RateLimiter",
    "ReconcilePolicy",
    "RetryPolicy",
    "ServerError",
    "SshKey",
    "SshKeyInUse",
    "shared_limiter",
]

"""`LambdaClient`: one object with a small client per API resource, sharing one transport."""

from __future__ import annotations

from lambda_provider.client.filesystems import FilesystemsClient
from lambda_provider.client.firewall import FirewallClient
from lambda_provider.client.images import ImagesClient
from lambda_provider.client.instance_types import InstanceTypesClient
from lambda_provider.client.instances import InstancesClient, ReconcilePolicy
from lambda_provider.client.ratelimit import RateLimiter
from lambda_provider.client.regions import RegionsClient
from lambda_provider.client.ssh_keys import SshKeysClient
from lambda_provider.client.transport import RetryPolicy, Transport


class LambdaClient:
    """Lambda Cloud API v1 client.

    `api_key` is required (pass it in; this class does not read configuration). `base_url` defaults to
    LAMBDA_API_URL or https://cloud.lambda.ai/api/v1.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        reconcile: ReconcilePolicy | None = None,
    ) -> None:
        self.transport = Transport(api_key, base_url, timeout=timeout, limiter=limiter, retry=retry)
        self.instances = InstancesClient(self.transport, reconcile)
        self.instance_types = InstanceTypesClient(self.transport)
        self.ssh_keys = SshKeysClient(self.transport)
        self.filesystems = FilesystemsClient(self.transport)
        self.images = ImagesClient(self.transport)
        self.regions = RegionsClient(self.transport)
        self.firewall = FirewallClient(self.transport)

    @property
    def base_url(self) -> str:
        return self.transport.base_url

    def __repr__(self) -> str:
        return f"LambdaClient({self.base_url!r})"

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> LambdaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

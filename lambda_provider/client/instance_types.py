"""`GET /instance-types`: the catalogue and where each type has capacity right now."""

from __future__ import annotations

from lambda_provider.client.models import InstanceTypeAvailability
from lambda_provider.client.transport import Transport


class InstanceTypesClient:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self) -> dict[str, InstanceTypeAvailability]:
        data = self._t.request("GET", "/instance-types")
        if not isinstance(data, dict):
            return {}
        return {name: InstanceTypeAvailability.from_api(name, raw) for name, raw in data.items()}

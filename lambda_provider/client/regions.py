"""`GET /regions`."""

from __future__ import annotations

from lambda_provider.client.models import Region
from lambda_provider.client.transport import Transport


class RegionsClient:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self) -> list[Region]:
        data = self._t.request("GET", "/regions")
        return [Region.from_api(r) for r in data if isinstance(r, (dict, str))] if isinstance(data, list) else []

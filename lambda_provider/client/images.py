"""`GET /images` (one record per image and region)."""

from __future__ import annotations

from lambda_provider.client.models import Image
from lambda_provider.client.transport import Transport


class ImagesClient:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self) -> list[Image]:
        data = self._t.request("GET", "/images")
        return [Image.from_api(r) for r in data if isinstance(r, dict)] if isinstance(data, list) else []

"""Instance prices (cents/hour) for the policy pack: policy config, else the live catalogue, else list prices."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lambda_provider.gitops.capacity import fetch_catalogue

# Public list prices (../shared/lambda-cloud/NOTES.md §6) as the emulator's catalogue carries them: used only when no
# API key is at hand.
LIST_PRICES_FILE = Path(__file__).resolve().parents[1] / "emulator" / "catalog.yaml"


def list_prices() -> dict[str, int]:
    data = yaml.safe_load(LIST_PRICES_FILE.read_text()) or {}
    return {name: int(spec.get("price_cents_per_hour", 0)) for name, spec in (data.get("instance_types") or {}).items()}


def price_table(config: Mapping[str, Any]) -> tuple[dict[str, int], str]:
    """({type: cents/h}, where they came from)."""
    configured = config.get("prices_cents_per_hour")
    if isinstance(configured, Mapping) and configured:
        return {str(k): int(v) for k, v in configured.items()}, "policy config"
    catalogue, _ = fetch_catalogue(os.environ.get("LAMBDA_API_KEY"), os.environ.get("LAMBDA_API_URL"))
    if catalogue:
        prices = {name: item.instance_type.price_cents_per_hour for name, item in catalogue.items()}
        return prices, "GET /instance-types"
    return list_prices(), "list prices"

"""The fleet's SSH key: generated (its private half a secret output) or the user's own key pair."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

from lambda_provider.fleet.config import FleetConfig
from lambda_provider.resources import SshKey


@dataclass(frozen=True)
class FleetKey:
    key: SshKey
    private_key: pulumi.Output[str] | None  # None: the user's own key file (`private_key_path`)
    private_key_path: str | None
    path_hint: str  # what the `ssh` outputs print after `-i`


def fleet_key(config: FleetConfig, stack: str, opts: pulumi.ResourceOptions) -> FleetKey:
    cfg = config.ssh_key
    if cfg.generate:
        key = SshKey("ssh-key", name=cfg.name, opts=opts)
        return FleetKey(key, key.private_key, cfg.private_key_path, f"~/.ssh/lambda-sae-{stack}")
    public = Path(cfg.public_key_path or "").read_text().strip()
    key = SshKey("ssh-key", name=cfg.name, public_key=public, opts=opts)
    return FleetKey(key, None, cfg.private_key_path, cfg.private_key_path or "")

"""Routes and the API's record shapes, one module per resource (moto's `responses`); importing this package
registers every route in the one table of router.py."""

from __future__ import annotations

from . import catalogue, control, filesystems, firewall, instances, ssh_keys

__all__ = ["catalogue", "control", "filesystems", "firewall", "instances", "ssh_keys"]

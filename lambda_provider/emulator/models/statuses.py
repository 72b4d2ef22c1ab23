"""Instance status sets of the emulator (its own copy on purpose: see the package docstring)."""

from __future__ import annotations

LIVE_STATUSES = ("booting", "active", "unhealthy", "terminating")  # hold capacity and quota
RUNNING_STATUSES = ("active", "unhealthy")  # have an SSH endpoint
# Keep SSH keys, filesystems and firewall rulesets "in use" (a preempted machine is not gone until terminated).
HOLDING_STATUSES = (*LIVE_STATUSES, "preempted")

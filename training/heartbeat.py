"""A launch heartbeat: `ranks/rank-<rank>.json` in the run's directory, written once per process when it is up (after
its first step or chunk). The fleet waits for every rank's file carrying this launch's id (FLEET_LAUNCH_ID)."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from training.checkpoint import write_json_atomic


def write_heartbeat(out_dir: Path, rank: int, world: int, step: int) -> None:
    ranks = out_dir / "ranks"
    ranks.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        ranks / f"rank-{rank}.json",
        {
            "rank": rank,
            "world_size": world,
            "step": step,
            "launch_id": os.environ.get("FLEET_LAUNCH_ID") or None,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )

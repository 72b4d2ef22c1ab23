"""Progress records for the operator CLI's live view: one JSON line per event in the file named by
LAMBDA_SAE_PROGRESS.

`emit` runs inside the Pulumi program and the dynamic providers (other processes than the CLI that tails the file),
so each record is a single `write` to a descriptor opened with O_APPEND: lines from concurrent writers never
interleave. Without the variable, or on any error, `emit` does nothing: progress must never fail an update.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

ENV = "LAMBDA_SAE_PROGRESS"


def emit(kind: str, **fields: Any) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    try:
        line = json.dumps({"kind": kind, "time": time.time(), **fields}, default=str, separators=(",", ":")) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except Exception:  # noqa: BLE001 -- progress is best effort by contract
        pass


def read_new(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The complete records written after byte `offset`, and the offset to read from next time."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1  # a record still being written stays for the next read
    records = []
    for raw in data[:end].splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records, offset + end

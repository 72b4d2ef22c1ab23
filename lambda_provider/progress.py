"""Progress events for a live view: one JSON line per event, appended to the file named by `LAMBDA_SAE_PROGRESS`
(a no-op when unset). Providers run in the engine's plugin process, so a file is how they reach the CLI's view."""

from __future__ import annotations

import json
import os
import time
from typing import Any

ENV = "LAMBDA_SAE_PROGRESS"


def emit(kind: str, **fields: Any) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    line = json.dumps({"kind": kind, "time": time.time(), **fields}, default=str) + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except OSError:
        pass

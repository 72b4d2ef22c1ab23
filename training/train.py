"""Command line: `python -m training.train --config CONFIG.yaml [--key value | --set key=value ...]`.

Under torchrun every rank runs this same command. Exit codes: 0 finished or stopped cleanly (see status.json),
2 bad configuration (last stderr line `config error: ...`), 1 failure (status.json says 'failed'; last stderr line
`trainer error: <Type>: <message>`, after the traceback). A relaunch of a finished run that fails before its first
step leaves status.json and summary.json as they were and records the failure in relaunch-error.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path

from training.checkpoint import read_json, write_json_atomic
from training.config import ConfigError, build_config, parse_cli_overrides


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _record_failure(out_dir: Path, error: str, finished_before: bool, trained: bool) -> None:
    """status.json says 'failed', unless this process relaunched a finished run and never took a step: then the
    finished run's files stay and the failure goes to relaunch-error.json."""
    if not out_dir.is_dir():
        return
    if finished_before and not trained:
        write_json_atomic(
            out_dir / "relaunch-error.json",
            {
                "error": error,
                "time": datetime.now(UTC).isoformat(timespec="seconds"),
                "launch_id": os.environ.get("FLEET_LAUNCH_ID") or None,
            },
        )
    else:
        write_json_atomic(out_dir / "status.json", {"state": "failed", "error": error})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", help="YAML file of config keys (see training/config.py)")
    args, rest = parser.parse_known_args(argv)
    try:
        cfg = build_config(args.config, parse_cli_overrides(rest))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    from training.trainer import Trainer

    out_dir = Path(cfg.out_dir)
    finished_before = (read_json(out_dir / "status.json") or {}).get("state") == "finished"
    trainer: Trainer | None = None
    try:
        trainer = Trainer(cfg)
        trainer.run()
    except ConfigError as exc:
        if finished_before:
            _record_failure(out_dir, _one_line(exc), finished_before, trained=False)
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        traceback.print_exc()
        error = _one_line(exc)
        _record_failure(out_dir, error, finished_before, trained=trainer is not None and trainer.steps_here > 0)
        print(f"trainer error: {error}", file=sys.stderr, flush=True)  # the last line: the fleet shows it
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

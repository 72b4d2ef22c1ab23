"""Command line: `python -m training.train --config CONFIG.yaml [--key value | --set key=value ...]`.

Under torchrun every rank runs this same command. Exit codes: 0 finished or stopped cleanly (see status.json),
2 bad configuration, 1 failure (status.json says 'failed').
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from training.checkpoint import write_json_atomic
from training.config import ConfigError, build_config, parse_cli_overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file of config keys (see training/config.py)")
    args, rest = parser.parse_known_args(argv)
    try:
        cfg = build_config(args.config, parse_cli_overrides(rest))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    from training.trainer import Trainer

    try:
        trainer = Trainer(cfg)
        trainer.run()
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        traceback.print_exc()
        out_dir = Path(cfg.out_dir)
        if out_dir.is_dir():
            write_json_atomic(out_dir / "status.json", {"state": "failed", "error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m lambda_provider.emulator`: run the Lambda Cloud emulator (see README.md beside this file).

Foreground (default): prints `LAMBDA_API_URL=...`, `LAMBDA_API_KEY=...`, `LAMBDA_EMULATOR_CONTROL_URL=...` and serves
until SIGTERM/SIGINT.  `--background` starts it detached and returns once it serves (same lines printed; also in
<data-dir>/emulator.env, log in <data-dir>/emulator.log).  `--stop` stops the one serving --data-dir.
`--status` prints the env lines of the running one (exit 1 if none).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .catalog import CatalogError, load_catalog
from .httpd import ENV_FILE, PID_FILE, running_pid, serve

DEFAULT_DATA_DIR = Path(".lambda-emulator")
DEFAULT_TIME_SCALE = 0.05


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lambda_provider.emulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="HTTP port on 127.0.0.1; 0 = any free port (default: the data dir's last port, else any)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"state, filesystems and instance homes (default: {DEFAULT_DATA_DIR})",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=DEFAULT_TIME_SCALE,
        help="multiplies boot times and rate-limit windows; 1 = live timings "
        f"(default: {DEFAULT_TIME_SCALE}, a GH200 boots in 15 s)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML merged over the built-in catalog.yaml (types, prices, capacity, quotas, faults)",
    )
    parser.add_argument(
        "--terminated-retention",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long a terminated instance stays listed and GET-able before it is gone (404), in catalogue "
        "seconds x --time-scale like every duration (default: the catalogue's lifecycle.terminated_retention_seconds, "
        "300)",
    )
    parser.add_argument("--api-key", default=None, help="accept this API key (default: a key stable per data dir)")
    parser.add_argument("--no-rate-limit", action="store_true", help="switch the per-account rate limits off")
    parser.add_argument("--log-level", default="INFO", help="DEBUG logs every request (default: INFO)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--background", action="store_true", help="start detached; return once it serves")
    mode.add_argument("--stop", action="store_true", help="stop the emulator serving --data-dir")
    mode.add_argument("--status", action="store_true", help="print the env lines of the emulator serving --data-dir")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    data_dir: Path = args.data_dir.resolve()
    if args.stop:
        return _stop(data_dir)
    if args.status:
        return _status(data_dir)
    if args.time_scale <= 0:
        print("--time-scale must be > 0 (1 = live timings, 0.01 = 100x faster)", file=sys.stderr)
        return 2
    if args.terminated_retention is not None and args.terminated_retention < 0:
        print("--terminated-retention must be >= 0 seconds (0 = gone as soon as terminated)", file=sys.stderr)
        return 2
    try:
        catalog = load_catalog(args.config)
    except CatalogError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.background:
        return _background(data_dir, argv if argv is not None else sys.argv[1:])
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.log_level.upper() != "DEBUG":
        logging.getLogger("asyncssh").setLevel(logging.WARNING)  # it logs every channel at INFO
    return serve(
        data_dir,
        catalog,
        port=args.port,
        time_scale=args.time_scale,
        api_key=args.api_key,
        rate_limits=not args.no_rate_limit,
        terminated_retention_seconds=args.terminated_retention,
    )


def _background(data_dir: Path, argv: list[str]) -> int:
    if running_pid(data_dir) is not None:
        print(f"already running for {data_dir}:", file=sys.stderr)
        return _status(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / ENV_FILE).unlink(missing_ok=True)
    child_args = [a for a in argv if a != "--background"]
    log_file = open(data_dir / "emulator.log", "ab")  # noqa: SIM115 -- handed to the child
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    child = subprocess.Popen(
        [sys.executable, "-m", "lambda_provider.emulator", *child_args],
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=log_file,
        start_new_session=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if child.poll() is not None:
            print(f"emulator exited with {child.returncode}; see {data_dir / 'emulator.log'}", file=sys.stderr)
            return 1
        env_file = data_dir / ENV_FILE
        if env_file.exists() and env_file.read_text().count("\n") >= 3:
            print(env_file.read_text(), end="", flush=True)
            return 0
        time.sleep(0.05)
    print(f"emulator did not come up in 60 s; see {data_dir / 'emulator.log'}", file=sys.stderr)
    child.terminate()
    return 1


def _stop(data_dir: Path) -> int:
    pid = running_pid(data_dir)
    if pid is None:
        print(f"no emulator running for {data_dir}", file=sys.stderr)
        (data_dir / PID_FILE).unlink(missing_ok=True)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and running_pid(data_dir) == pid:
        time.sleep(0.05)
    if running_pid(data_dir) == pid:
        print(f"emulator {pid} did not stop in 30 s; killing it", file=sys.stderr)
        os.kill(pid, signal.SIGKILL)
        (data_dir / PID_FILE).unlink(missing_ok=True)
    print(f"stopped emulator {pid}")
    return 0


def _status(data_dir: Path) -> int:
    if running_pid(data_dir) is None:
        print(f"no emulator running for {data_dir}", file=sys.stderr)
        return 1
    print((data_dir / ENV_FILE).read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

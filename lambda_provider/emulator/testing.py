"""Run the real emulator as a subprocess from tests and scripts, and drive its control API.

with running_emulator(tmp_path / "emu", time_scale=0.01) as emu:
    client = MyClient(emu.base_url, emu.api_key)
    emu.set_capacity("gpu_1x_gh200", "us-east-3", 0)
    emu.inject_fault(action="error", status=503, path="^/instances$", count=2)
    emu.restart()   # same data dir, same port when free: state and SSH ports survive
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 60.0


class EmulatorError(RuntimeError):
    pass


@dataclass
class ApiResponse:
    status: int
    body: Any  # parsed JSON, or the raw text when the body is not JSON
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class EmulatorHandle:
    data_dir: Path
    time_scale: float
    rate_limits: bool
    config: Path | dict[str, Any] | None
    requested_api_key: str | None
    terminated_retention: float | None = None
    base_url: str = ""
    api_key: str = ""
    control_url: str = ""
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _stdout_lines: queue.Queue[str] = field(default_factory=queue.Queue)

    # ------------------------------------------------------------------ process
    def start(self, port: int = 0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "lambda_provider.emulator",
            "--port",
            str(port),
            "--data-dir",
            str(self.data_dir),
            "--time-scale",
            repr(self.time_scale),
        ]
        if not self.rate_limits:
            argv.append("--no-rate-limit")
        if isinstance(self.config, dict):
            config_path = self.data_dir / "emulator-config.yaml"
            config_path.write_text(yaml.safe_dump(self.config))
            argv += ["--config", str(config_path)]
        elif self.config is not None:
            argv += ["--config", str(self.config)]
        if self.requested_api_key is not None:
            argv += ["--api-key", self.requested_api_key]
        if self.terminated_retention is not None:
            argv += ["--terminated-retention", repr(self.terminated_retention)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
        stderr_log = open(self.data_dir / "emulator-stderr.log", "ab")  # noqa: SIM115 -- owned by the child
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=stderr_log, stdin=subprocess.DEVNULL, env=env, cwd=str(_PACKAGE_ROOT)
        )
        stderr_log.close()
        self._stdout_lines = queue.Queue()
        threading.Thread(target=self._drain_stdout, args=(self.process, self._stdout_lines), daemon=True).start()
        values: dict[str, str] = {}
        while len(values) < 3:
            try:
                line = self._stdout_lines.get(timeout=START_TIMEOUT_SECONDS)
            except queue.Empty:
                self.stop()
                raise EmulatorError(
                    f"emulator did not start in {START_TIMEOUT_SECONDS} s; {self._log_tail()}"
                ) from None
            if line == "":
                raise EmulatorError(f"emulator exited with {self.process.wait()}; {self._log_tail()}")
            name, _, value = line.strip().partition("=")
            values[name] = value
        self.base_url = values["LAMBDA_API_URL"]
        self.api_key = values["LAMBDA_API_KEY"]
        self.control_url = values["LAMBDA_EMULATOR_CONTROL_URL"]
        self.port = int(self.base_url.split(":")[2].split("/")[0])

    @staticmethod
    def _drain_stdout(process: subprocess.Popen[bytes], lines: queue.Queue[str]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            lines.put(raw.decode(errors="replace"))
        lines.put("")

    def _log_tail(self) -> str:
        try:
            return "stderr tail:\n" + (self.data_dir / "emulator-stderr.log").read_text()[-3000:]
        except OSError:
            return "no stderr log"

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait: SSH endpoints close, instance processes die, state stays on disk."""
        if self.process is None:
            return None
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing is cleaned up."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        """Stop, then start on the same data dir and (if still free) the same port."""
        port = self.port
        self.stop()
        try:
            self.start(port)
        except EmulatorError:
            self.start(0)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # ------------------------------------------------------------------ HTTP
    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        api_key: str | None = None,
        auth: str | None = None,
        raw_body: bytes | None = None,
        timeout: float = 30,
    ) -> ApiResponse:
        """Call the public API (`path` relative to /api/v1). `auth` overrides the whole Authorization header."""
        headers = {"Authorization": auth if auth is not None else f"Bearer {api_key or self.api_key}"}
        return _request(method, self.base_url + path, body, headers, raw_body, timeout)

    def control_response(self, method: str, path: str, body: Any = None) -> ApiResponse:
        """Call the control API and return its answer whatever the status (`control` insists on 200)."""
        return _request(method, self.control_url + path, body, {}, None, 30)

    def control(self, method: str, path: str, body: Any = None) -> Any:
        response = self.control_response(method, path, body)
        if response.status != 200:
            raise EmulatorError(f"control {method} {path} -> {response.status}: {response.body}")
        return response.body

    def reset(self) -> None:
        self.control("POST", "/reset")

    def inject_fault(self, **rule: Any) -> dict[str, Any]:
        """Add a fault rule, e.g. inject_fault(action="error", status=502, body="html", path="^/instances", count=1)."""
        return self.control("POST", "/faults", rule)

    def clear_faults(self) -> None:
        self.control("DELETE", "/faults")

    def set_capacity(self, instance_type: str, region: str, available: int) -> None:
        self.control("PUT", "/capacity", {"instance_type": instance_type, "region": region, "available": available})

    def set_rate_limits(self, enabled: bool) -> None:
        self.control("PUT", "/rate-limits", {"enabled": enabled})

    def set_instance_status(self, instance_id: str, status: str) -> dict[str, Any]:
        """status: "unhealthy" (nvidia-smi then fails), "preempted" (processes and SSH stop) or "active"."""
        return self.control("POST", f"/instances/{instance_id}/status", {"status": status})

    def hang_boot(self, instance_id: str, stage: str | None = "ip") -> None:
        """Make one instance's boot never finish: stage "ip" (booting with ip) or "no-ip"; None resumes it."""
        self.control("POST", f"/instances/{instance_id}/boot", {"hang": stage})

    def hang_new_boots(self, stage: str | None = "ip") -> None:
        """Every later launch boots forever (None restores normal boots)."""
        self.control("PUT", "/boot", {"hang": stage})

    def add_account(self) -> str:
        """A new account; returns its API key."""
        return self.control("POST", "/accounts")["api_key"]

    def instance_paths(self, instance_id: str) -> dict[str, Any]:
        """Host paths of an instance: root, home, and {filesystem name: host dir}."""
        return self.control("GET", f"/instances/{instance_id}")


def _request(
    method: str, url: str, body: Any, headers: dict[str, str], raw_body: bytes | None, timeout: float
) -> ApiResponse:
    data = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, payload, response_headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        status, payload, response_headers = exc.code, exc.read(), dict(exc.headers)
    try:
        parsed: Any = json.loads(payload) if payload else None
    except ValueError:
        parsed = payload.decode(errors="replace")
    return ApiResponse(status, parsed, response_headers)


@contextmanager
def running_emulator(
    data_dir: Path,
    *,
    time_scale: float = 0.01,
    rate_limits: bool = False,
    config: Path | dict[str, Any] | None = None,
    api_key: str | None = None,
    terminated_retention: float | None = None,
) -> Iterator[EmulatorHandle]:
    """Start the real emulator process on `data_dir`; stop it (SIGTERM) on exit.

    `config` is a YAML file merged over catalog.yaml, or the same content as a dict. `terminated_retention`:
    catalogue seconds (x time_scale) a terminated record stays listed (`--terminated-retention`).
    """
    handle = EmulatorHandle(Path(data_dir), time_scale, rate_limits, config, api_key, terminated_retention)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


def wait_for(
    probe: Callable[[], Any], timeout: float = 30, message: str = "condition not reached", interval: float = 0.02
) -> Any:
    """Poll `probe` until it returns something truthy and return that (a lifecycle wait, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, message
        time.sleep(interval)

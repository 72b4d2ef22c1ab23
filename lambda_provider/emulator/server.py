"""The emulator process: HTTP API on 127.0.0.1 (stdlib ThreadingHTTPServer) plus an asyncio thread that runs the
lifecycle reconciler and the per-instance SSH endpoints."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import shutil
import signal
import threading
import time
import traceback
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import errors
from .catalog import Catalog
from .control import handle_control
from .errors import ApiError
from .faults import FaultInjector, fault_body
from .instance_fs import InstanceLayout
from .models import RUNNING_STATUSES, Account, CloudState
from .processes import kill_instance_processes
from .ratelimit import RateLimiter
from .responses import MethodNotAllowed, resolve
from .ssh import SSHEndpoints

log = logging.getLogger("lambda_provider.emulator")

API_PREFIX = "/api/v1"
CONTROL_PREFIX = "/_emulator"
RECONCILE_INTERVAL_SECONDS = 0.02
PID_FILE = "emulator.pid"
ENV_FILE = "emulator.env"
PORT_FILE = "emulator.port"


class EmulatorApp:
    """Everything one emulator process holds; HTTP threads and the asyncio thread share it."""

    def __init__(
        self, data_dir: Path, catalog: Catalog, time_scale: float, api_key: str | None, rate_limits: bool
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0 (1.0 = real Lambda timings, 0.01 = 100x faster)")
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.catalog = catalog
        self.time_scale = time_scale
        self.layout = InstanceLayout(data_dir)
        self.state = CloudState(data_dir / "state.sqlite3", catalog, time_scale)
        self.api_key = self.state.ensure_default_account(api_key)
        self.limiter = RateLimiter(catalog.rate_limits, time_scale)
        self.limiter.enabled = rate_limits and catalog.rate_limits.enabled
        self.faults = FaultInjector(catalog.faults)
        self.hang_new_boots: str | None = None
        self.api_url = ""
        # API requests served (429s included) per kind, for benchmarks (GET /_emulator/stats); control calls excluded.
        self.stats: dict[str, int] = {"requests": 0, "throttled": 0, "launches": 0}
        self._stats_lock = threading.Lock()
        self._ssh = SSHEndpoints(self.layout)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emulator-loop", daemon=True)
        self._wake: asyncio.Event | None = None
        self._reconcile_lock: asyncio.Lock | None = None
        self._reconciler: asyncio.Task[None] | None = None
        self._killed: set[str] = set()
        self._wiped: set[str] = set()

    def count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1

    def stats_snapshot(self) -> dict[str, int]:
        with self._stats_lock:
            return dict(self.stats)

    @staticmethod
    def now() -> float:
        return time.time()

    # ------------------------------------------------------------------ loop thread
    def start(self) -> None:
        self._thread.start()
        self._run(self._startup())

    def stop(self) -> None:
        if self._thread.is_alive():
            self._run(self._shutdown(), timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self.state.close()

    def reset(self) -> None:
        self._run(self._reset())
        self.faults.clear()
        for rule in self.catalog.faults:
            self.faults.add(rule)
        self.limiter.reset()
        self.hang_new_boots = None

    def wake_reconciler(self) -> None:
        if self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def _run(self, coro: Any, timeout: float = 60) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=timeout)

    async def _startup(self) -> None:
        self._wake = asyncio.Event()
        self._reconcile_lock = asyncio.Lock()
        known = {doc["id"] for doc in self.state.all_instance_docs()}
        instances_dir = self.data_dir / "instances"
        if instances_dir.is_dir():
            for child in instances_dir.iterdir():
                if child.name not in known:
                    shutil.rmtree(child, ignore_errors=True)
        self._reconciler = asyncio.get_running_loop().create_task(self._reconcile_forever())

    async def _shutdown(self) -> None:
        if self._reconciler is not None:
            self._reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciler
        await self._stop_everything()

    async def _stop_everything(self) -> None:
        groups: dict[str, list[int]] = {}
        for instance_id in list(self._ssh.endpoints):
            groups[instance_id] = await self._ssh.stop(instance_id)
        ids = {doc["id"] for doc in self.state.all_instance_docs()} | set(groups)
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(None, kill_instance_processes, i, groups.get(i, []), 0.3) for i in ids)
        )

    async def _reset(self) -> None:
        assert self._reconcile_lock is not None
        async with self._reconcile_lock:
            await self._stop_everything()
            self.state.reset()
            self._killed.clear()
            self._wiped.clear()
            for sub in ("instances", "filesystems"):
                shutil.rmtree(self.data_dir / sub, ignore_errors=True)

    async def _reconcile_forever(self) -> None:
        assert self._wake is not None and self._reconcile_lock is not None
        while True:
            try:
                async with self._reconcile_lock:
                    await self._reconcile_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the clock running whatever one instance does
                log.error("reconcile failed:\n%s", traceback.format_exc())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=RECONCILE_INTERVAL_SECONDS)
            self._wake.clear()

    async def _reconcile_once(self) -> None:
        now = self.now()
        self.state.tick(now)
        loop = asyncio.get_running_loop()
        seen = set()
        for item in self.state.reconcile_view(now):
            seen.add(item.id)
            spec = self.catalog.instance_types[item.doc["type"]]
            endpoint = self._ssh.endpoints.get(item.id)
            if item.status in RUNNING_STATUSES or item.ready_due:
                if endpoint is not None and endpoint.generation != item.restart_generation:
                    groups = await self._ssh.stop(item.id)  # restart: processes die, SSH comes back
                    await loop.run_in_executor(None, kill_instance_processes, item.id, groups, 0.3)
                    endpoint = None
                if endpoint is None:
                    self.layout.prepare_instance(item.doc, spec)
                    try:
                        endpoint = await self._ssh.start(item.doc, spec, item.ssh_port)
                    except OSError as exc:
                        log.error("%s", exc)
                        continue
                    self.state.mark_running(item.id, endpoint.port)
                elif item.ssh_port != endpoint.port:
                    self.state.mark_running(item.id, endpoint.port)
                continue
            if endpoint is not None or (
                item.status in ("terminating", "terminated", "preempted") and item.id not in self._killed
            ):
                groups = await self._ssh.stop(item.id)
                await loop.run_in_executor(None, kill_instance_processes, item.id, groups, 0.3)
                self._killed.add(item.id)
            if item.status == "terminated" and item.id not in self._wiped:
                self.layout.wipe_instance_disk(item.id)
                self._wiped.add(item.id)
        for gone in (self._wiped | self._killed) - seen:
            self.layout.delete_instance(gone)
            self._wiped.discard(gone)
            self._killed.discard(gone)

    # ------------------------------------------------------------------ HTTP
    def authenticate(self, header: str | None) -> Account:
        key = _api_key_from_header(header)
        account = self.state.account_for_key(key) if key else None
        if account is None and header and header.startswith("Basic "):
            # The securityScheme also allows the raw key after "Basic " (../shared/lambda-cloud/NOTES.md §1).
            account = self.state.account_for_key(header[len("Basic ") :].strip())
        if account is None:
            raise errors.invalid_api_key()
        return account


def _api_key_from_header(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer":
        return token or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(token, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, _password = decoded.partition(":")
        return user or None
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lambda-cloud-emulator"
    server: EmulatorHTTPServer

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def _dispatch(self, method: str) -> None:
        app = self.server.app
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            if url.path == CONTROL_PREFIX or url.path.startswith(CONTROL_PREFIX + "/"):
                status, payload = handle_control(app, method, url.path[len(CONTROL_PREFIX) :], _parse_json(raw))
                self._send_json(status, payload)
                return
            if not url.path.startswith(API_PREFIX + "/"):
                raise errors.not_found_route()
            api_path = url.path[len(API_PREFIX) :].rstrip("/") or "/"
            self._api(app, method, api_path, url.query, raw)
        except ApiError as exc:
            self._send_json(exc.status, exc.body())
        except MethodNotAllowed as exc:
            # Body of the live 405 is UNCONFIRMED (../shared/lambda-cloud/NOTES.md §5.1); this is the Starlette default
            # of FastAPI backends.
            self._send_json(405, {"detail": "Method Not Allowed"}, {"Allow": ", ".join(exc.allowed)})
        except Exception:
            log.error("unhandled error on %s %s:\n%s", method, self.path, traceback.format_exc())
            self._send_json(500, {"error": {"code": "global/unknown", "message": "Something unexpected occurred."}})

    def _api(self, app: EmulatorApp, method: str, api_path: str, query: str, raw: bytes) -> None:
        decision = app.faults.decide(method, api_path)
        if decision.delay_seconds:
            time.sleep(decision.delay_seconds)
        if decision.terminal is not None:
            rule = decision.terminal
            if rule.action == "disconnect":
                self.close_connection = True
                return
            payload, content_type = fault_body(rule)
            self._send(rule.status, payload, content_type)
            return
        handler, match = resolve(method, api_path)
        account = app.authenticate(self.headers.get("Authorization"))
        is_launch = api_path == "/instance-operations/launch"
        app.count("requests")
        if not app.limiter.allow(account.id, is_launch, app.now()):
            app.count("throttled")
            raise errors.rate_limited()
        if is_launch:
            app.count("launches")
        body: Any = dict(parse_qsl(query)) if method == "GET" else _parse_json(raw, strict=True)
        payload = handler(app, account, match, body)
        if decision.drop_response:
            # The work is done (a launch is committed and billed) but the client never hears back.
            self.close_connection = True
            return
        envelope: dict[str, Any] = {"data": payload}
        if api_path == "/audit-events":
            envelope["page_token"] = None
        self._send_json(200, envelope)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _parse_json(raw: bytes, strict: bool = False) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        if strict:
            raise errors.invalid_parameters(
                "Request body is not valid JSON.", "Send a JSON object with Content-Type: application/json."
            ) from None
        return None


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: EmulatorApp) -> None:
        super().__init__(address, _Handler)
        self.app = app


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_pid(data_dir: Path) -> int | None:
    """The pid of the emulator serving `data_dir`, if one is running."""
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def serve(
    data_dir: Path, catalog: Catalog, *, port: int | None, time_scale: float, api_key: str | None, rate_limits: bool
) -> int:
    """Run in the foreground until SIGTERM/SIGINT. Prints the URL and key lines first, flushed."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    other = running_pid(data_dir)
    if other is not None and other != os.getpid():
        raise SystemExit(
            f"an emulator (pid {other}) already serves {data_dir}; stop it with "
            f"`python -m lambda_provider.emulator --stop --data-dir {data_dir}` or use another --data-dir"
        )
    app = EmulatorApp(data_dir, catalog, time_scale, api_key, rate_limits)
    httpd = _bind(app, data_dir, port)
    bound_port = httpd.server_address[1]
    app.api_url = f"http://127.0.0.1:{bound_port}{API_PREFIX}"
    control_url = f"http://127.0.0.1:{bound_port}{CONTROL_PREFIX}"
    stopping = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    app.start()
    lines = [
        f"LAMBDA_API_URL={app.api_url}",
        f"LAMBDA_API_KEY={app.api_key}",
        f"LAMBDA_EMULATOR_CONTROL_URL={control_url}",
    ]
    (data_dir / PORT_FILE).write_text(f"{bound_port}\n")
    (data_dir / PID_FILE).write_text(f"{os.getpid()}\n")
    (data_dir / ENV_FILE).write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    log.info("serving %s (data dir %s, time scale %s)", app.api_url, data_dir, time_scale)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        app.stop()
        httpd.server_close()
        for name in (PID_FILE, ENV_FILE):
            (data_dir / name).unlink(missing_ok=True)
        log.info("stopped")
    return 0


def _bind(app: EmulatorApp, data_dir: Path, port: int | None) -> EmulatorHTTPServer:
    if port is not None:
        return EmulatorHTTPServer(("127.0.0.1", port), app)
    try:  # no --port: keep the data dir's previous port so URLs in Pulumi config stay valid
        previous = int((data_dir / PORT_FILE).read_text().strip())
        return EmulatorHTTPServer(("127.0.0.1", previous), app)
    except (OSError, ValueError):
        return EmulatorHTTPServer(("127.0.0.1", 0), app)

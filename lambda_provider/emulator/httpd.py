"""HTTP on 127.0.0.1 (stdlib ThreadingHTTPServer, HTTP/1.1 keep-alive) in front of the app, and the process's
`serve()` (pid, port and env files; SIGTERM/SIGINT stop it cleanly).

Per request: read the body (Content-Length or `Transfer-Encoding: chunked`), then for `/api/v1/...`: faults ->
route (404, or 405 with `Allow`) -> auth (401) -> rate limits (429) -> handler -> `{"data": ...}`; for
`/_emulator/...`: route -> handler -> payload. Every error answer is JSON `{"error": {"code", "message",
"suggestion"?}}`, HEAD and OPTIONS and unknown methods included (HEAD answers headers only).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import errors
from . import responses as _routes  # noqa: F401 -- importing it registers every route in router.py's table
from .app import EmulatorApp
from .catalog import Catalog
from .errors import ApiError
from .faults import fault_body
from .router import API_PREFIX, CONTROL_PREFIX, MethodNotAllowed, Request, resolve, scope_of

log = logging.getLogger("lambda_provider.emulator")

PID_FILE = "emulator.pid"
ENV_FILE = "emulator.env"
PORT_FILE = "emulator.port"
MAX_BODY_BYTES = 16 * 1024 * 1024  # launch's user_data may be 1 MB; nothing the API takes is near this
_MAX_LINE = 65536


class BodyError(Exception):
    """The request body cannot be read; the answer closes the connection (the stream position is lost)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def method_not_allowed(allowed: list[str]) -> ApiError:
    # The live 405 body is UNCONFIRMED (../shared/lambda-cloud/NOTES.md §5.1); the emulator answers in the
    # API's own envelope, with Starlette's text and an `Allow` header.
    return ApiError(
        405,
        "global/method-not-allowed",
        "Method Not Allowed",
        f"Use {' or '.join(allowed)} on this path." if allowed else None,
    )


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

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own errors (bad request line, unsupported method, headers too long) as JSON envelopes; an
        unsupported method is a 405, as on a FastAPI server."""
        if self.request_version == "HTTP/0.9":  # an unparsable request line: answer with a status line anyway
            self.request_version = self.protocol_version
        if code == HTTPStatus.NOT_IMPLEMENTED:
            error = method_not_allowed([])
        else:
            try:
                phrase = HTTPStatus(code).phrase
            except ValueError:
                phrase = "Error"
            kind = "global/invalid-parameters" if 400 <= code < 500 else "global/unknown"
            error = ApiError(code, kind, message or phrase)
        self._send_json(error.status, error.body(), {"Connection": "close"})

    # ------------------------------------------------------------------ body
    def _read_body(self) -> bytes:
        encoding = self.headers.get("Transfer-Encoding")
        if encoding is not None:
            if [c.strip().lower() for c in encoding.split(",")] != ["chunked"]:
                raise BodyError(400, f"Transfer-Encoding {encoding!r} is not supported; send chunked or a length.")
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if not length_text:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            raise BodyError(400, f"Content-Length {length_text!r} is not a number.") from None
        if length < 0:
            raise BodyError(400, f"Content-Length {length} is negative.")
        if length > MAX_BODY_BYTES:
            raise BodyError(413, f"Request body of {length} bytes is over the {MAX_BODY_BYTES} byte limit.")
        body = self.rfile.read(length)
        if len(body) < length:
            raise BodyError(400, f"Request body ended after {len(body)} of {length} bytes.")
        return body

    def _read_chunked(self) -> bytes:
        """RFC 9112 §7.1: hex size lines (extensions ignored), data, CRLF; a 0 chunk, then trailers to a blank line."""
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(_MAX_LINE)
            if not line.endswith(b"\n"):
                raise BodyError(400, "Chunked request body ended inside a chunk size line.")
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BodyError(400, f"Chunk size {size_text[:20]!r} is not hexadecimal.") from None
            if size < 0:
                raise BodyError(400, "Chunk size is negative.")
            if size == 0:
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise BodyError(413, f"Request body is over the {MAX_BODY_BYTES} byte limit.")
            data = self.rfile.read(size)
            if len(data) < size or self.rfile.readline(_MAX_LINE) not in (b"\r\n", b"\n"):
                raise BodyError(400, "Chunked request body ended inside a chunk.")
            chunks.append(data)
        while True:  # trailer fields: read and ignored
            line = self.rfile.readline(_MAX_LINE)
            if line in (b"\r\n", b"\n"):
                break
            if not line.endswith(b"\n"):
                raise BodyError(400, "Chunked request body ended inside its trailers.")
        return b"".join(chunks)

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, method: str) -> None:
        app = self.server.app
        try:
            raw = self._read_body()
        except BodyError as exc:
            error = ApiError(exc.status, "global/invalid-parameters", str(exc))
            self._send_json(error.status, error.body(), {"Connection": "close"})
            return
        path = urlsplit(self.path).path
        try:
            if scope_of(path) == "api":
                self._api(app, method, raw)
            elif scope_of(path) == "control":
                route, params = resolve(method, path)
                self._send_json(200, route.handler(Request(app, None, params, _parse_json(raw), app.now())))
            else:
                raise errors.not_found_route()
        except ApiError as exc:
            self._send_json(exc.status, exc.body())
        except MethodNotAllowed as exc:
            error = method_not_allowed(exc.allowed)
            self._send_json(405, error.body(), {"Allow": ", ".join(exc.allowed)})
        except Exception:
            log.error("unhandled error on %s %s:\n%s", method, self.path, traceback.format_exc())
            self._send_json(500, {"error": {"code": "global/unknown", "message": "Something unexpected occurred."}})

    def _api(self, app: EmulatorApp, method: str, raw: bytes) -> None:
        url = urlsplit(self.path)
        api_path = url.path[len(API_PREFIX) :].rstrip("/") or "/"
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
        route, params = resolve(method, url.path)
        account = app.authenticate(self.headers.get("Authorization"))
        is_launch = route.path == "/instance-operations/launch"
        app.count("requests")
        if not app.limiter.allow(account.id, is_launch, app.now()):
            app.count("throttled")
            raise errors.rate_limited()
        if is_launch:
            app.count("launches")
        body: Any = dict(parse_qsl(url.query)) if method == "GET" else _parse_json(raw, strict=True)
        payload = route.handler(Request(app, account, params, body, app.now()))
        if decision.drop_response:
            # The work is done (a launch is committed and billed) but the client never hears back.
            self.close_connection = True
            return
        self._send_json(200, {"data": payload, **route.envelope_extra})

    # ------------------------------------------------------------------ answers
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
            if self.command != "HEAD":
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


# ---------------------------------------------------------------------------------------------- the process
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
    data_dir: Path,
    catalog: Catalog,
    *,
    port: int | None,
    time_scale: float,
    api_key: str | None,
    rate_limits: bool,
    terminated_retention_seconds: float | None = None,
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
    app = EmulatorApp(data_dir, catalog, time_scale, api_key, rate_limits, terminated_retention_seconds)
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

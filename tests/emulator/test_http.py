"""The HTTP transport, byte for byte over raw sockets: chunked request bodies, JSON error envelopes for 405, HEAD,
OPTIONS and unknown methods, and keep-alive connections that stay in step after each of them."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from lambda_provider.emulator.testing import EmulatorHandle

from .conftest import CheckedApi

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICN+lJwsONkwrdsSnQsu1ydUkIuIg5oOC+Eslvmtt60T noname"


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawConnection:
    """One keep-alive TCP connection; requests are written as given, answers read by Content-Length."""

    def __init__(self, emu: EmulatorHandle) -> None:
        url = urlsplit(emu.base_url)
        self.prefix = url.path
        self.host = f"{url.hostname}:{url.port}"
        self.auth = f"Bearer {emu.api_key}"
        self.sock = socket.create_connection((url.hostname, url.port), timeout=10)
        self.reader = self.sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def send(self, head: str, body: bytes = b"") -> None:
        self.sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)

    def request_head(self, method: str, path: str, *headers: str) -> str:
        lines = [f"{method} {self.prefix}{path} HTTP/1.1", f"Host: {self.host}", f"Authorization: {self.auth}"]
        return "\n".join([*lines, *headers]) + "\n"

    def read(self, head_only: bool = False) -> RawResponse:
        status_line = self.reader.readline().decode()
        assert status_line.startswith("HTTP/1.1 "), f"no HTTP answer: {status_line!r}"
        headers = {}
        while (line := self.reader.readline().decode()) not in ("\r\n", ""):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head_only else int(headers.get("content-length", "0"))
        return RawResponse(int(status_line.split()[1]), headers, self.reader.read(length))

    def closed_by_server(self) -> bool:
        return self.reader.read(1) == b""


@pytest.fixture
def conn(emulator: EmulatorHandle) -> Any:
    connection = RawConnection(emulator)
    yield connection
    connection.close()


def _chunked(payload: bytes, sizes: tuple[int, ...]) -> bytes:
    out, start = b"", 0
    for size in sizes:
        out += f"{size:x};ext=1\r\n".encode() + payload[start : start + size] + b"\r\n"
        start += size
    return out + b"0\r\nX-Trailer: ignored\r\n\r\n"


def test_a_chunked_post_is_decoded(conn: RawConnection, api: CheckedApi) -> None:
    payload = json.dumps({"name": "chunked", "public_key": PUBLIC_KEY}).encode()
    head = conn.request_head("POST", "/ssh-keys", "Content-Type: application/json", "Transfer-Encoding: chunked")
    conn.send(head, _chunked(payload, (7, 40, len(payload) - 47)))
    assert conn.read().json()["data"]["name"] == "chunked"


def test_the_connection_stays_in_step_after_a_chunked_post(conn: RawConnection) -> None:
    payload = json.dumps({"name": "in-step", "public_key": PUBLIC_KEY}).encode()
    head = conn.request_head("POST", "/ssh-keys", "Content-Type: application/json", "Transfer-Encoding: chunked")
    conn.send(head, _chunked(payload, (len(payload),)))
    conn.read()
    conn.send(conn.request_head("GET", "/ssh-keys"))
    assert [k["name"] for k in conn.read().json()["data"]] == ["in-step"]


def test_a_malformed_chunk_is_refused_and_the_connection_closed(conn: RawConnection) -> None:
    head = conn.request_head("POST", "/ssh-keys", "Transfer-Encoding: chunked")
    conn.send(head, b"zz\r\n{}\r\n0\r\n\r\n")
    response = conn.read()
    assert response.json()["error"]["code"] == "global/invalid-parameters"
    assert response.status == 400
    assert conn.closed_by_server()


def test_an_unsupported_transfer_encoding_is_refused(conn: RawConnection) -> None:
    conn.send(conn.request_head("POST", "/ssh-keys", "Transfer-Encoding: gzip, chunked"), b"0\r\n\r\n")
    assert conn.read().status == 400


def test_405_answers_in_the_error_envelope(conn: RawConnection) -> None:
    conn.send(conn.request_head("POST", "/file-systems", "Content-Length: 2"), b"{}")
    response = conn.read()
    assert response.status == 405
    assert response.headers["allow"] == "GET"
    assert response.json()["error"]["code"] == "global/method-not-allowed"
    assert response.json()["error"]["message"] == "Method Not Allowed"


def test_head_answers_405_headers_only_and_the_connection_stays_in_step(conn: RawConnection) -> None:
    conn.send(conn.request_head("HEAD", "/instances"))
    response = conn.read(head_only=True)
    assert response.status == 405
    assert response.headers["content-type"] == "application/json"
    conn.send(conn.request_head("GET", "/instances"))
    assert conn.read().json() == {"data": []}  # no stray body bytes were sent after the HEAD answer


def test_options_answers_405_in_the_error_envelope(conn: RawConnection) -> None:
    conn.send(conn.request_head("OPTIONS", "/instances"))
    response = conn.read()
    assert response.status == 405
    assert response.json()["error"]["code"] == "global/method-not-allowed"


def test_an_unknown_method_answers_json_not_html(conn: RawConnection) -> None:
    conn.send(conn.request_head("BREW", "/instances"))
    response = conn.read()
    assert response.status == 405
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "global/method-not-allowed"


def test_head_on_an_unknown_path_is_404_headers_only(conn: RawConnection) -> None:
    conn.send(conn.request_head("HEAD", "/clusters"))
    response = conn.read(head_only=True)
    assert response.status == 404
    conn.send(conn.request_head("GET", "/regions"))
    assert conn.read().status == 200


def test_a_bad_content_length_is_refused_in_the_envelope(conn: RawConnection) -> None:
    conn.send(conn.request_head("POST", "/ssh-keys", "Content-Length: many"))
    response = conn.read()
    assert response.status == 400
    assert response.json()["error"]["code"] == "global/invalid-parameters"


def test_a_malformed_request_line_answers_json_not_html(conn: RawConnection) -> None:
    conn.send("NOT-HTTP\n")
    response = conn.read()
    assert response.status == 400
    assert response.json()["error"]["code"] == "global/invalid-parameters"

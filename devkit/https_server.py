"""A threaded HTTP(S) file server on loopback that can demand an Authorization header.

It records every request's path and headers, so tests can check where a secret was sent.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from contextlib import contextmanager


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]


@dataclass
class ServerState:
    root: Path
    required_auth: dict[str, str] = field(default_factory=dict)  # path prefix -> Authorization value
    redirects: dict[str, str] = field(default_factory=dict)  # path -> Location
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        return

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        state = self.server.state
        path = self.path.split("?", 1)[0]
        with state.lock:
            state.requests.append(RecordedRequest(path=path, headers=dict(self.headers.items())))
        if path in state.redirects:
            self._reply(302, b"", {"Location": state.redirects[path]})
            return
        for prefix, expected in state.required_auth.items():
            if path.startswith(prefix) and self.headers.get("Authorization") != expected:
                self._reply(401, b"unauthorized\n", {"WWW-Authenticate": "Bearer"})
                return
        if path.startswith("/status/"):
            self._reply(int(path.rsplit("/", 1)[1]), b"status\n", {})
            return
        file = (state.root / path.lstrip("/")).resolve()
        if not file.is_relative_to(state.root.resolve()) or not file.is_file():
            self._reply(404, b"not found\n", {})
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(file.stat().st_size))
        self.end_headers()
        with open(file, "rb") as source:
            while chunk := source.read(1024 * 1024):
                self.wfile.write(chunk)

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ServerState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@dataclass
class RunningServer:
    state: ServerState
    base_url: str

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def requests_for(self, path: str) -> list[RecordedRequest]:
        with self.state.lock:
            return [r for r in self.state.requests if r.path == path]


@contextmanager
def serve_files(root: Path, *, tls: ssl.SSLContext | None = None, host_name: str = "127.0.0.1",
                required_auth: dict[str, str] | None = None) -> Iterator[RunningServer]:
    """Serve ``root`` on a free loopback port; with ``tls``, over HTTPS."""
    state = ServerState(root=root, required_auth=dict(required_auth or {}))
    server = _Server(state)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield RunningServer(state=state, base_url=f"{'https' if tls else 'http'}://{host_name}:{port}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

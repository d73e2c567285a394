"""A threaded HTTP(S) file server on loopback that can demand an Authorization header.

It records every request's path and headers, so tests can check where a secret was sent.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Iterator
from contextlib import contextmanager

from devkit.threaded_server import QuietThreadingServer, running


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    query: str = ""


@dataclass
class Fault:
    """Misbehaviour for the next ``times`` requests of a path."""

    times: int = 1
    status: int | None = None  # answer with this status instead of the file
    drop_after: int | None = None  # send this many body bytes, then close the connection
    stall_seconds: float = 0.0  # wait this long before the body (bounded; ends early on shutdown)
    retry_after: str | None = None
    corrupt_at: int | None = None  # flip the bits of the body byte at this offset of the response


def corrupt(chunk: bytes, chunk_offset: int, fault: "Fault | None") -> bytes:
    """``chunk`` (starting at ``chunk_offset`` of a response body) with the fault's byte flipped, if it holds it."""
    if fault is None or fault.corrupt_at is None or not chunk_offset <= fault.corrupt_at < chunk_offset + len(chunk):
        return chunk
    index = fault.corrupt_at - chunk_offset
    return chunk[:index] + bytes([chunk[index] ^ 0xFF]) + chunk[index + 1:]


def pace(rate: float | None, began: float, sent: int, stopping: threading.Event) -> bool:
    """Hold a body to ``rate`` bytes per second, like a link of that speed (None: no limit), once
    ``sent`` bytes went out since ``began``; True when a shutdown ended the wait.

    A client that reads faster than the link keeps the socket buffers nearly empty, as on a real
    network; on loopback an unpaced server fills megabytes of buffers that a killed client loses."""
    if rate:
        ahead = began + sent / rate - time.monotonic()
        if ahead > 0 and stopping.wait(ahead):
            return True
    return False


class ByteCounter:
    """Body bytes a server has written to its sockets, counted chunk by chunk (a client killed
    mid-body still counts what reached it), and a wait for the count to pass a mark."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.total = 0

    def add(self, count: int) -> None:
        with self._changed:
            self.total += count
            self._changed.notify_all()

    def wait_for(self, mark: int, timeout: float) -> bool:
        """True once ``total`` reaches ``mark``; False after ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: self.total >= mark, timeout=timeout)


@dataclass
class ServerState:
    root: Path
    required_auth: dict[str, str] = field(default_factory=dict)  # path prefix -> Authorization value
    redirects: dict[str, str] = field(default_factory=dict)  # path -> Location
    faults: dict[str, "Fault"] = field(default_factory=dict)  # path -> fault to inject
    accept_ranges: bool = True
    send_rate: int | None = None  # bytes per second of every body (a slow link); None for full speed
    ignore_ranges: bool = False  # advertise Accept-Ranges, yet answer every Range with 200 and the whole file
    etag: str | None = '"v1"'
    # When set, answers to requests without a Range header hold their body until it is set (or the
    # server stops): a test can keep a whole download in flight while other clients arrive.
    hold_whole: threading.Event | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    counter: ByteCounter = field(default_factory=ByteCounter)

    @property
    def body_bytes_sent(self) -> int:
        return self.counter.total

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            fault = self.faults.get(path)
            if fault is None or fault.times <= 0:
                return None
            fault.times -= 1
            return fault


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        return

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        state = self.server.state
        path, _, query = self.path.partition("?")
        with state.lock:
            state.requests.append(RecordedRequest(path=path, headers=dict(self.headers.items()), query=query))
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
        fault = state.take_fault(path)
        if fault is not None and fault.status is not None:
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self._reply(fault.status, b"injected\n", extra)
            return
        file = (state.root / path.lstrip("/")).resolve()
        if not file.is_relative_to(state.root.resolve()) or not file.is_file():
            self._reply(404, b"not found\n", {})
            return
        size = file.stat().st_size
        start, end = 0, size
        status = 200
        requested = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        honoured = state.accept_ranges and not state.ignore_ranges
        if requested and honoured and (if_range is None or if_range == state.etag):
            first, _, last = requested.removeprefix("bytes=").partition("-")
            start = int(first)
            end = int(last) + 1 if last else size
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(end - start))
        if state.accept_ranges:
            self.send_header("Accept-Ranges", "bytes")
        if state.etag:
            self.send_header("ETag", state.etag)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()
        if fault is not None and fault.stall_seconds:
            state.stopping.wait(fault.stall_seconds)
        if state.hold_whole is not None and not requested:
            while not state.hold_whole.wait(0.05) and not state.stopping.is_set():
                pass
        limit = end - start if fault is None or fault.drop_after is None else min(fault.drop_after, end - start)
        rate = state.send_rate
        piece = 256 * 1024 if rate is None else max(1, min(256 * 1024, rate // 20))
        began = time.monotonic()
        with open(file, "rb") as source:
            source.seek(start)
            sent = 0
            while sent < limit:
                chunk = source.read(min(piece, limit - sent))
                if not chunk:
                    break
                self.wfile.write(corrupt(chunk, sent, fault))
                sent += len(chunk)
                state.counter.add(len(chunk))
                if pace(rate, began, sent, state.stopping):
                    break
        if sent < end - start:
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(QuietThreadingServer):
    def __init__(self, state: ServerState) -> None:
        super().__init__(_Handler)
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
    with running(server) as port:
        try:
            yield RunningServer(state=state, base_url=f"{'https' if tls else 'http'}://{host_name}:{port}")
        finally:
            state.stopping.set()  # ends injected stalls, so the server can shut down

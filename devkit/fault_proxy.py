"""A reverse proxy on loopback that injects faults in front of a real server (an S3 server, say).

Requests are forwarded unchanged, Host header included, so SigV4 signatures still verify at the
server behind it. Faults: an error status (with an S3 error body) for the next N matching
requests, or a connection dropped after N bytes of a response body.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Iterator
from urllib.parse import urlsplit

from devkit.https_server import ByteCounter, Fault, corrupt, pace
from devkit.threaded_server import QuietThreadingServer, running


@dataclass
class ProxyRule:
    method: str
    path_contains: str
    fault: Fault
    query_contains: str = ""


@dataclass
class ProxyState:
    upstream_host: str
    upstream_port: int
    rules: list[ProxyRule] = field(default_factory=list)
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, target, Range
    counter: ByteCounter = field(default_factory=ByteCounter)  # body bytes of GET answers sent to clients
    send_rate: int | None = None  # bytes per second of every body (a slow link); None for full speed
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_fault(self, method: str, target: str) -> Fault | None:
        path, _, query = target.partition("?")
        with self.lock:
            for rule in self.rules:
                if (rule.method == method and rule.path_contains in path and rule.query_contains in query
                        and rule.fault.times > 0):
                    rule.fault.times -= 1
                    return rule.fault
        return None


S3_ERROR = b"""<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>%s</Code><Message>injected</Message><RequestId>0</RequestId></Error>"""
S3_CODES = {503: b"SlowDown", 500: b"InternalError", 403: b"AccessDenied", 404: b"NoSuchKey"}


class _Handler(BaseHTTPRequestHandler):
    server: "_ProxyServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def _forward(self) -> None:
        state = self.server.state
        with state.lock:
            state.seen.append((self.command, self.path, self.headers.get("Range")))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        fault = state.take_fault(self.command, self.path)
        if fault is not None and fault.status is not None:
            payload = S3_ERROR % S3_CODES.get(fault.status, b"InternalError")
            self.send_response(fault.status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        upstream = http.client.HTTPConnection(state.upstream_host, state.upstream_port, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in ("connection", "transfer-encoding"):
                    self.send_header(key, value)
            declared = response.getheader("Content-Length")
            if declared is None:  # a chunked answer: read whole, sent with a length
                content = response.read()
                self.send_header("Content-Length", str(len(content)))
                length, chunks = len(content), iter([content])
            else:  # streamed through, so a large object is never held whole
                length = int(declared)
                chunks = iter(lambda: response.read(256 * 1024), b"")
            self.end_headers()
            limit = length if fault is None or fault.drop_after is None else min(fault.drop_after, length)
            sent = 0
            started = time.monotonic()
            for chunk in chunks:
                chunk = corrupt(chunk[:limit - sent], sent, fault)
                self.wfile.write(chunk)
                sent += len(chunk)
                if self.command == "GET":
                    state.counter.add(len(chunk))
                if sent >= limit or pace(state.send_rate, started, sent, state.stopping):
                    break
            if limit < length:
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
        finally:
            upstream.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward


class _ProxyServer(QuietThreadingServer):
    def __init__(self, state: ProxyState) -> None:
        super().__init__(_Handler)
        self.state = state


@dataclass
class RunningProxy:
    state: ProxyState
    url: str

    def add(self, rule: ProxyRule) -> None:
        with self.state.lock:
            self.state.rules.append(rule)

    def seen(self, method: str, path_contains: str) -> list[tuple[str, str, str | None]]:
        with self.state.lock:
            return [s for s in self.state.seen if s[0] == method and path_contains in s[1].split("?")[0]]


@contextmanager
def fault_proxy(upstream_url: str) -> Iterator[RunningProxy]:
    parts = urlsplit(upstream_url)
    state = ProxyState(upstream_host=parts.hostname or "127.0.0.1", upstream_port=parts.port or 80)
    with running(_ProxyServer(state)) as port:
        try:
            yield RunningProxy(state=state, url=f"http://127.0.0.1:{port}")
        finally:
            state.stopping.set()  # ends paced responses, so the proxy can shut down

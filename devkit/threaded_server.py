"""Running a ``socketserver`` in a background thread of the test or demo process."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from typing import Iterator


class QuietThreadingServer(ThreadingHTTPServer):
    """A threaded HTTP server on a free loopback port that does not print dropped connections."""

    daemon_threads = True

    def __init__(self, handler: type) -> None:
        super().__init__(("127.0.0.1", 0), handler)

    def handle_error(self, request, client_address) -> None:  # broken connections are injected on purpose
        return


@contextmanager
def running(server: ThreadingHTTPServer) -> Iterator[int]:
    """Serve in a thread until the block ends; yields the port."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

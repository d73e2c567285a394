"""S3 faults injected by a proxy in front of the real rclone S3 server: survived or reported at once."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from devkit.fault_proxy import ProxyRule, RunningProxy, fault_proxy
from devkit.https_server import Fault
from devkit.models import model_files
from devkit.secrets import write_secret
from tests.support.lease_runs import run_fetch, s3_values
from devkit.s3_server import TEST_ACCESS_KEY, TEST_SECRET_KEY, rclone_s3, write_bucket_files

MiB = 1024 * 1024
WEIGHTS = os.urandom(3 * MiB + 777)


pytestmark = pytest.mark.usefixtures("no_ambient_aws_credentials")


@pytest.fixture(scope="module")
def bucket_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("s3-faults")
    files = {**model_files("m"), "1/weights.bin": WEIGHTS}
    write_bucket_files(root, "models", {f"parent/m/{k}": v for k, v in files.items()})
    return root


@pytest.fixture()
def proxy(bucket_root: Path) -> Iterator[RunningProxy]:
    with rclone_s3(bucket_root, keys=(TEST_ACCESS_KEY, TEST_SECRET_KEY), static=True) as server:
        with fault_proxy(server.url) as running:
            yield running


def fetch(proxy: RunningProxy, tmp_path: Path):
    write_secret(tmp_path / "secrets", "s3-access", TEST_ACCESS_KEY)
    write_secret(tmp_path / "secrets", "s3-secret", TEST_SECRET_KEY)
    values: dict[str, Any] = s3_values({"repositoryName": "repo0", "bucketName": "models", "endpoint": proxy.url,
                                        "accessKey": "s3-access", "secretKey": "s3-secret"})
    return run_fetch(values, ["name=m,uri=model://repo0/parent/m"], tmp_path)


def weights_of(run) -> bytes:
    return (run.dest / "m" / "1" / "weights.bin").read_bytes()


@pytest.mark.parametrize("status", [503, 500])
def test_slowdown_and_server_errors_are_retried(proxy: RunningProxy, tmp_path: Path, status: int) -> None:
    proxy.add(ProxyRule("GET", "/weights.bin", Fault(times=2, status=status)))
    proxy.add(ProxyRule("GET", "/models", Fault(times=1, status=status), query_contains="list-type=2"))
    run = fetch(proxy, tmp_path)
    assert run.result("m").ok, run.results
    assert hashlib.sha256(weights_of(run)).digest() == hashlib.sha256(WEIGHTS).digest()
    assert len(proxy.seen("GET", "/weights.bin")) == 3


def test_a_body_cut_off_is_resumed_with_a_range(proxy: RunningProxy, tmp_path: Path) -> None:
    proxy.add(ProxyRule("GET", "/weights.bin", Fault(times=1, drop_after=1 * MiB)))
    run = fetch(proxy, tmp_path)
    assert run.result("m").ok, run.results
    assert weights_of(run) == WEIGHTS
    ranges = [r for _, _, r in proxy.seen("GET", "/weights.bin")]
    assert len(ranges) == 2
    # The second request asks only for what had not arrived.
    second = ranges[1]
    assert second is not None and second.startswith("bytes=") and not second.startswith("bytes=0-")


def test_access_denied_fails_at_once(proxy: RunningProxy, tmp_path: Path) -> None:
    proxy.add(ProxyRule("GET", "/weights.bin", Fault(times=10, status=403)))
    run = fetch(proxy, tmp_path)
    result = run.result("m")
    assert not result.ok and "403" in (result.error or "")
    assert len(proxy.seen("GET", "/weights.bin")) == 1
    assert not (run.dest / "m").exists()


def test_errors_that_do_not_stop_leave_the_model_out(proxy: RunningProxy, tmp_path: Path) -> None:
    proxy.add(ProxyRule("GET", "/weights.bin", Fault(times=50, status=503)))
    run = fetch(proxy, tmp_path)
    result = run.result("m")
    assert not result.ok
    assert "503" in (result.error or "") or "SlowDown" in (result.error or "")
    assert not (run.dest / "m").exists()
    assert len(proxy.seen("GET", "/weights.bin")) < 20  # bounded retries, no storm


def test_retries_of_presigned_gets_never_print_the_signature(proxy: RunningProxy, tmp_path: Path, cli) -> None:
    """Objects come by presigned GETs over urllib3, which would log each retry with its signed URL."""
    import yaml

    proxy.add(ProxyRule("GET", "/weights.bin", Fault(times=2, status=503)))
    write_secret(tmp_path / "secrets", "s3-access", TEST_ACCESS_KEY)
    write_secret(tmp_path / "secrets", "s3-secret", TEST_SECRET_KEY)
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(s3_values({"repositoryName": "repo0", "bucketName": "models",
                                                "endpoint": proxy.url, "accessKey": "s3-access",
                                                "secretKey": "s3-secret"})))
    result = cli("fetch", "--values", values, "--model", "name=m,uri=model://repo0/parent/m", "--dest",
                 tmp_path / "models" / "repository", "--secrets-dir", tmp_path / "secrets", "--termination-log",
                 tmp_path / "termination-log", "--debug")
    assert result.status == 0, result.stderr
    assert (tmp_path / "models" / "repository" / "m" / "1" / "weights.bin").read_bytes() == WEIGHTS
    paths = [path for _, path, _ in proxy.seen("GET", "/weights.bin")]
    assert len(paths) == 3 and all("X-Amz-Signature=" in path for path in paths)  # presigned, retried
    assert "X-Amz-Signature" not in result.stderr + result.stdout and TEST_SECRET_KEY not in result.stderr

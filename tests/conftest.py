"""Fixtures shared by the fetcher's tests: TLS material, served model zips, a CLI runner."""

from __future__ import annotations

import io
import os
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import trustme

from devkit.https_server import RunningServer, serve_files
from devkit.image import ImageFetcher, build_image, ensure_base_image, remove_image, unavailable_reason
from devkit.models import model_files, zip_model
from devkit.wheel import FetcherInstall, checkout_install, wheel_install
from fetcher.cli.main import run
from tests.support.aws_env import isolated_aws_environment


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    """The folder the test web servers serve."""
    folder = tmp_path / "site"
    folder.mkdir()
    zip_model(folder / "my_model.zip", model_files("my_model"))
    zip_model(folder / "nested.zip", model_files("my_model"), top_folder="my_model")
    return folder


@pytest.fixture()
def https_server(site: Path, server_tls: ssl.SSLContext) -> Iterator[RunningServer]:
    with serve_files(site, tls=server_tls) as server:
        yield server


@pytest.fixture()
def http_server(site: Path) -> Iterator[RunningServer]:
    with serve_files(site) as server:
        yield server


@dataclass
class CliResult:
    status: int
    stdout: str
    stderr: str


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``model-fetcher`` in-process; returns status, stdout and stderr (logs included)."""

    def invoke(*args: str | Path) -> CliResult:
        out = io.StringIO()
        capsys.readouterr()
        status = run([str(a) for a in args], stdout=out)
        captured = capsys.readouterr()
        return CliResult(status=int(status), stdout=out.getvalue() + captured.out, stderr=captured.err)

    return invoke


@pytest.fixture(scope="session")
def wheel_fetcher(tmp_path_factory: pytest.TempPathFactory) -> FetcherInstall:
    """The built wheel installed into a fresh virtual environment (once per session)."""
    return wheel_install(tmp_path_factory.mktemp("wheel-lane"))


@pytest.fixture(scope="session")
def image_base() -> str:
    """The base the tests build Dockerfile.fetcher on (skips where podman cannot run).

    FETCHER_IMAGE_BASE when set, else the stand-in Debian base made once per machine.
    """
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    return os.environ.get("FETCHER_IMAGE_BASE") or ensure_base_image()


@pytest.fixture(scope="session")
def image_fetcher(tmp_path_factory: pytest.TempPathFactory, image_base: str) -> Iterator[ImageFetcher]:
    """The image built from Dockerfile.fetcher with podman, once per session."""
    base = image_base
    tag = f"localhost/triton-model-fetcher:test-{os.getpid()}"
    label = f"model-fetcher-test={os.getpid()}"
    build_image(tag, base=base, work=tmp_path_factory.mktemp("image-build"))
    try:
        yield ImageFetcher(lane="image", prefix=Path(sys.prefix), image=tag, label=label,
                           shared=tmp_path_factory.getbasetemp())
    finally:
        remove_image(tag, label=label)


@pytest.fixture()
def fetcher_install(request: pytest.FixtureRequest) -> FetcherInstall:
    """Where the tests' ``model-fetcher`` comes from: the checkout (default), the built wheel or the image.

    A test runs in every lane with ``@every_lane`` (tests/support/lanes.py); FETCHER_LANE=wheel (or
    image) makes every test that uses this fixture run against the wheel (or the image).
    """
    lane = getattr(request, "param", None) or os.environ.get("FETCHER_LANE", "checkout")
    if lane in ("wheel", "image"):
        return request.getfixturevalue(f"{lane}_fetcher")
    if lane != "checkout":
        raise ValueError(f"FETCHER_LANE={lane!r}: say checkout, wheel or image")
    return checkout_install()


@pytest.fixture()
def no_ambient_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No AWS credentials from the machine: S3 tests see only the ones they set up."""
    from fetcher.sources import s3 as s3_source

    for name in list(os.environ):
        if name.startswith("AWS_") and name != "AWS_CA_BUNDLE":
            monkeypatch.delenv(name)
    for name, value in isolated_aws_environment(tmp_path).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    s3_source.forget_cached_credentials()
    yield
    s3_source.forget_cached_credentials()

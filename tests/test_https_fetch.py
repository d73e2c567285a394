"""Fetching zips over HTTP(S) from real servers on loopback, with the matching Authorization secret."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from devkit.secrets import write_secret
from devkit.https_server import serve_files
from devkit.models import model_files, zip_model
from devkit.ports import free_port

TOKEN = "Bearer tok-7f3a-SECRET-VALUE"


def values_file(tmp_path: Path, https: list[dict], models: list) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"server": {"modelRepositories": {"https": https}}, "lease": {"models": models}}))
    return path


def fetch_args(tmp_path: Path, values: Path, *extra: str | Path) -> list[str | Path]:
    return ["fetch", "--values", values, "--dest", tmp_path / "models" / "repository",
            "--secrets-dir", tmp_path / "secrets", "--termination-log", tmp_path / "termination-log", *extra]


def installed(tmp_path: Path) -> list[str]:
    root = tmp_path / "models" / "repository"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_https_with_matching_secret(tmp_path: Path, https_server, ca_file: Path, cli) -> None:
    https_server.state.required_auth["/private/"] = TOKEN
    (https_server.state.root / "private").mkdir()
    shutil.copy(https_server.state.root / "my_model.zip", https_server.state.root / "private" / "my_model.zip")
    write_secret(tmp_path / "secrets", "ngc-model-pull", TOKEN)
    values = values_file(tmp_path, [{"secretName": "ngc-model-pull", "targetUri": "127.0.0.1/private"}],
                         [f"name=my_model,uri={https_server.url('private/my_model.zip')}",
                          f"name=public,uri={https_server.url('nested.zip')}"])
    result = cli(*fetch_args(tmp_path, values, "--ca-bundle", ca_file))
    assert result.status == 0, result.stderr
    assert installed(tmp_path) == ["my_model", "public"]
    root = tmp_path / "models" / "repository"
    assert (root / "public" / "config.pbtxt").read_text().startswith('name: "public"')  # renamed to agree
    assert (root / "my_model" / "1" / "model.py").is_file()
    # The secret went to the URL it matched, and only there.
    assert [r.headers.get("Authorization") for r in https_server.requests_for("/private/my_model.zip")] == [TOKEN]
    assert [r.headers.get("Authorization") for r in https_server.requests_for("/nested.zip")] == [None]
    assert "tok-7f3a" not in result.stderr + result.stdout
    assert "model=my_model event=installed" in result.stderr and "bytes=" in result.stderr and "rate=" in result.stderr
    # Nothing but models in the root, and no work folders left in the staging folder beside it.
    assert sorted(p.name for p in (tmp_path / "models" / ".repository.staging").iterdir()) == ["manifest.json",
                                                                                             "metrics.prom"]


def test_wrong_token_is_a_clear_401(tmp_path: Path, https_server, ca_file: Path, cli) -> None:
    https_server.state.required_auth["/"] = TOKEN
    write_secret(tmp_path / "secrets", "pull", "Bearer wrong-SECRET")
    values = values_file(tmp_path, [{"secretName": "pull", "targetUri": "127.0.0.1"}],
                         [f"name=m,uri={https_server.url('my_model.zip')}"])
    result = cli(*fetch_args(tmp_path, values, "--ca-bundle", ca_file))
    assert result.status == 1
    assert "model 'm'" in result.stderr and "HTTP 401" in result.stderr and "secret 'pull' was sent" in result.stderr
    assert "wrong-SECRET" not in result.stderr
    assert "HTTP 401" in (tmp_path / "termination-log").read_text()
    assert installed(tmp_path) == []


def test_a_matching_secret_that_is_not_mounted_is_an_error(tmp_path: Path, https_server, ca_file: Path, cli) -> None:
    values = values_file(tmp_path, [{"secretName": "ngc-model-pull", "targetUri": "127.0.0.1"}],
                         [f"name=m,uri={https_server.url('my_model.zip')}"])
    result = cli(*fetch_args(tmp_path, values, "--ca-bundle", ca_file))
    assert result.status == 1
    assert "secret 'ngc-model-pull' is not mounted" in result.stderr
    assert https_server.state.requests == []  # no silent anonymous download


def test_tls_is_verified_by_default(tmp_path: Path, https_server, cli) -> None:
    values = values_file(tmp_path, [], [f"name=m,uri={https_server.url('my_model.zip')}"])
    result = cli(*fetch_args(tmp_path, values))
    assert result.status == 1
    assert "TLS verification failed" in result.stderr and "--ca-bundle" in result.stderr


def test_ca_bundle_from_the_standard_environment(tmp_path: Path, https_server, ca_file: Path, cli,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    values = values_file(tmp_path, [], [f"name=m,uri={https_server.url('my_model.zip')}"])
    assert cli(*fetch_args(tmp_path, values)).status == 0
    assert installed(tmp_path) == ["m"]


@pytest.mark.parametrize(("path", "expected"), [("missing.zip", "HTTP 404"), ("status/500", "HTTP 500 Internal Server Error, still after retries")])
def test_http_errors_name_the_model(tmp_path: Path, http_server, cli, path: str, expected: str) -> None:
    values = values_file(tmp_path, [], [f"name=broken,uri={http_server.url(path)}",
                                        f"name=good,uri={http_server.url('my_model.zip')}"])
    result = cli(*fetch_args(tmp_path, values))
    assert result.status == 1
    assert "model 'broken': " in result.stderr and expected in result.stderr
    assert installed(tmp_path) == ["good"]  # the models that succeeded stay
    assert "model 'broken'" in (tmp_path / "termination-log").read_text()


def test_404_is_not_retried_and_500_is(tmp_path: Path, http_server, cli) -> None:
    values = values_file(tmp_path, [], [f"name=a,uri={http_server.url('missing.zip')}"])
    cli(*fetch_args(tmp_path, values))
    assert len(http_server.requests_for("/missing.zip")) == 1
    values = values_file(tmp_path, [], [f"name=a,uri={http_server.url('status/503')}"])
    cli(*fetch_args(tmp_path, values))
    assert len(http_server.requests_for("/status/503")) == 5  # the first try and four retries


def test_redirect_to_another_host_does_not_forward_the_secret(tmp_path: Path, site: Path, cli) -> None:
    with serve_files(site) as target, serve_files(site, host_name="localhost") as origin:
        origin.state.redirects["/my_model.zip"] = target.url("my_model.zip")
        write_secret(tmp_path / "secrets", "pull", TOKEN)
        values = values_file(tmp_path, [{"secretName": "pull", "targetUri": "localhost"}],
                             [f"name=m,uri={origin.url('my_model.zip')}"])
        result = cli(*fetch_args(tmp_path, values))
        assert result.status == 0, result.stderr
        assert [r.headers.get("Authorization") for r in origin.requests_for("/my_model.zip")] == [TOKEN]
        assert [r.headers.get("Authorization") for r in target.requests_for("/my_model.zip")] == [None]


def test_https_to_http_downgrade_is_refused(tmp_path: Path, site: Path, https_server, ca_file: Path, cli) -> None:
    with serve_files(site) as plain:
        https_server.state.redirects["/my_model.zip"] = plain.url("my_model.zip")
        values = values_file(tmp_path, [], [f"name=m,uri={https_server.url('my_model.zip')}"])
        result = cli(*fetch_args(tmp_path, values, "--ca-bundle", ca_file))
        assert result.status == 1 and "downgrade is refused" in result.stderr
        assert plain.state.requests == []


def test_secret_over_plain_http_to_a_remote_host_is_refused(tmp_path: Path, cli) -> None:
    write_secret(tmp_path / "secrets", "pull", TOKEN)
    values = values_file(tmp_path, [{"secretName": "pull", "targetUri": "models.example.com"}],
                         ["name=m,uri=http://models.example.com/m.zip"])
    result = cli(*fetch_args(tmp_path, values))
    assert result.status == 1
    assert "refusing to send secret 'pull' over plain http" in result.stderr
    assert "allowPlainHttp: true" in result.stderr


def test_plain_http_credentials_when_the_values_allow_them(tmp_path: Path) -> None:
    from fetcher.credentials.secrets import SecretStore
    from fetcher.errors import SecretError
    from fetcher.lease.model_spec import parse_model_spec
    from fetcher.lease.values import HttpsRepository, LeaseValues
    from fetcher.sources.base import FetchOptions
    from fetcher.sources.https import HttpsSource, plan

    write_secret(tmp_path / "secrets", "pull", TOKEN)
    source = HttpsSource(FetchOptions(secrets=SecretStore(tmp_path / "secrets"), volumes_dir=tmp_path))
    spec = parse_model_spec("name=m,uri=http://models.example.com/m.zip", origin="t")
    allowed = LeaseValues(https=(HttpsRepository("pull", "models.example.com", allow_plain_http=True),))
    assert source._secret(plan(spec, None, allowed, source.options)).reveal() == TOKEN
    refused = LeaseValues(https=(HttpsRepository("pull", "models.example.com"),))
    with pytest.raises(SecretError, match="allowPlainHttp"):
        source._secret(plan(spec, None, refused, source.options))


def test_hostile_zip_leaves_nothing_behind(tmp_path: Path, site: Path, http_server, cli) -> None:
    import zipfile

    with zipfile.ZipFile(site / "evil.zip", "w") as zf:
        zf.writestr("config.pbtxt", b'name: "x"')
        zf.writestr("../../../escaped.txt", b"evil")
    values = values_file(tmp_path, [], [f"name=evil,uri={http_server.url('evil.zip')}"])
    result = cli(*fetch_args(tmp_path, values))
    assert result.status == 1 and "points outside" in result.stderr
    assert installed(tmp_path) == []
    assert not list(tmp_path.rglob("escaped.txt"))
    assert [p.name for p in (tmp_path / "models" / ".repository.staging").iterdir()] == ["metrics.prom"]


def test_sha256_is_checked(tmp_path: Path, http_server, cli) -> None:
    values = values_file(tmp_path, [], [{"name": "m", "uri": http_server.url("my_model.zip"), "sha256": "0" * 64}])
    result = cli(*fetch_args(tmp_path, values))
    assert result.status == 1 and "sha256" in result.stderr
    import hashlib

    digest = hashlib.sha256((http_server.state.root / "my_model.zip").read_bytes()).hexdigest()
    values = values_file(tmp_path, [], [{"name": "m", "uri": http_server.url("my_model.zip"), "sha256": digest}])
    assert cli(*fetch_args(tmp_path, values)).status == 0


def test_size_limit_applies_to_the_download(tmp_path: Path, http_server, cli) -> None:
    values = values_file(tmp_path, [], [f"name=m,uri={http_server.url('my_model.zip')}"])
    result = cli(*fetch_args(tmp_path, values, "--max-model-size", "100"))
    assert result.status == 1 and "the download: more than the limit of 100 bytes" in result.stderr


def test_a_restart_does_not_download_installed_models_again(tmp_path: Path, site: Path, http_server, cli) -> None:
    values = values_file(tmp_path, [], [f"name=m,uri={http_server.url('my_model.zip')}"])
    assert cli(*fetch_args(tmp_path, values)).status == 0
    result = cli(*fetch_args(tmp_path, values))
    assert result.status == 0 and "model=m event=unchanged" in result.stderr
    # The change check asks for one byte and compares the ETag; --no-change-check asks nothing.
    assert [r.headers.get("Range") for r in http_server.requests_for("/my_model.zip")] == [None, "bytes=0-0"]
    assert cli(*fetch_args(tmp_path, values, "--no-change-check")).status == 0
    assert len(http_server.requests_for("/my_model.zip")) == 2


def test_a_damaged_or_changed_model_is_fetched_again(tmp_path: Path, site: Path, http_server, cli) -> None:
    values = values_file(tmp_path, [], [f"name=m,uri={http_server.url('my_model.zip')}"])
    assert cli(*fetch_args(tmp_path, values)).status == 0
    model_py = tmp_path / "models" / "repository" / "m" / "1" / "model.py"
    model_py.write_text("truncated")  # a different size: not the model that was installed
    assert cli(*fetch_args(tmp_path, values)).status == 0
    assert "+ 1.0" in model_py.read_text()
    assert [r.headers.get("Range") for r in http_server.requests_for("/my_model.zip")] == [None, None]
    # A new URI for the same name replaces the model.
    zip_model(site / "v2.zip", model_files("m", addend=5.0))
    values = values_file(tmp_path, [], [f"name=m,uri={http_server.url('v2.zip')}"])
    assert cli(*fetch_args(tmp_path, values)).status == 0
    assert "+ 5.0" in model_py.read_text()
    assert installed(tmp_path) == ["m"]


def test_leftovers_of_an_interrupted_run_are_cleared(tmp_path: Path, http_server, cli) -> None:
    staging = tmp_path / "models" / ".repository.staging"
    (staging / "work-m-abc123" / "extracted" / "1").mkdir(parents=True)
    values = values_file(tmp_path, [], [f"name=m,uri={http_server.url('my_model.zip')}"])
    assert cli(*fetch_args(tmp_path, values)).status == 0
    assert sorted(p.name for p in staging.iterdir()) == ["manifest.json", "metrics.prom"]
    assert installed(tmp_path) == ["m"]


def test_bad_input_fails_before_any_download(tmp_path: Path, http_server, cli) -> None:
    values = values_file(tmp_path, [], [f"name=m,uri={http_server.url('my_model.zip')}", "name=x"])
    result = cli(*fetch_args(tmp_path, values))
    assert result.status == 3
    assert "lease.models[1]" in result.stderr and "name=<model>,uri=<uri>" in result.stderr
    assert http_server.state.requests == []
    assert "lease.models[1]" in (tmp_path / "termination-log").read_text()


def test_reference_example_served_by_python_http_server(tmp_path: Path, site: Path) -> None:
    """The reference's own recipe: `python -m http.server --directory .` and the installed console script."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port), "--directory", str(site)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        script = Path(sys.executable).parent / "model-fetcher"
        completed = subprocess.run(
            [str(script), "fetch", "--model", f"name=my_model,uri=http://127.0.0.1:{port}/my_model.zip",
             "--dest", str(tmp_path / "repo"), "--termination-log", str(tmp_path / "t")],
            capture_output=True, text=True, timeout=60, env={**os.environ},
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert completed.returncode == 0, completed.stderr
    assert sorted(p.name for p in (tmp_path / "repo" / "my_model").iterdir()) == ["1", "config.pbtxt"]


def test_a_100_mib_model_from_a_server_that_ignores_ranges_installs_with_default_settings(
        tmp_path: Path, http_server, cli) -> None:
    import hashlib
    import zipfile

    weights = os.urandom(1024 * 1024) * 100  # 100 MiB: over the default parallel threshold (64 MiB)
    with zipfile.ZipFile(http_server.state.root / "big.zip", "w") as zf:  # stored: the zip is as large as the model
        for name, content in model_files("big").items():
            zf.writestr(name, content)
        zf.writestr("1/weights.bin", weights)
    http_server.state.ignore_ranges = True  # Accept-Ranges: bytes, but 200 and the whole file for any Range
    result = cli("fetch", "--dest", tmp_path / "repository", "--termination-log", tmp_path / "termination",
                 "--model", f"name=big,uri={http_server.url('big.zip')}")
    assert result.status == 0, result.stderr
    installed = tmp_path / "repository" / "big" / "1" / "weights.bin"
    assert hashlib.sha256(installed.read_bytes()).digest() == hashlib.sha256(weights).digest()
    assert "event=single-stream" in result.stderr and "changed during the download" not in result.stderr
    assert any(r.headers.get("Range") for r in http_server.requests_for("/big.zip"))  # parts were tried first

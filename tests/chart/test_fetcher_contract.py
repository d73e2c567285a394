"""The fetcher's rendered command line against the pod's mounts, and run by hand on this machine.

Each path the fetcher is given must be where the pod actually mounts the thing it names; then the
rendered command, with the mount paths mapped to local folders, fetches the lease's models.
"""

from __future__ import annotations

import http.server
import importlib.util
import io
import ssl
import threading
import zipfile
from pathlib import PurePosixPath

import pytest

from conftest import load_example, merge_values
from devkit.pod import REWRITE, LocalPod


def arg(container, flag):
    args = container["args"]
    return args[args.index(flag) + 1]


def mount_of(rendered, container, path):
    """The volumeMount holding path (the deepest one), and path relative to it."""
    found = rendered.mount_holding(container, path)
    assert found, f"{path} is not on any volume of {container['name']}"
    return found


FULL = merge_values(
    load_example("ref-volumes.yaml"),
    load_example("ref-S3-keys.yaml"),
    {"fetcher": {"caBundle": {"configMapName": "corp-ca", "key": "ca.pem"}}},
)


def test_values_file_is_the_configmaps_key(render):
    rendered = render(FULL)
    mount, relative = mount_of(rendered, rendered.fetcher, arg(rendered.fetcher, "--values"))
    assert mount["volume"]["configMap"]["name"] == rendered.one("ConfigMap")["metadata"]["name"]
    assert relative in rendered.one("ConfigMap")["data"]


def test_ca_bundle_file_is_the_configmaps_key(render):
    rendered = render(FULL)
    mount, relative = mount_of(rendered, rendered.fetcher, arg(rendered.fetcher, "--ca-bundle"))
    assert {"key": "ca.pem", "path": relative} in mount["volume"]["configMap"]["items"]


def test_destination_and_staging_are_on_one_writable_volume_that_triton_reads(render):
    rendered = render(FULL)
    dest = arg(rendered.fetcher, "--dest")
    staging = str(PurePosixPath(dest).parent / f".{PurePosixPath(dest).name}.staging")
    dest_mount, _ = mount_of(rendered, rendered.fetcher, dest)
    staging_mount, staging_relative = mount_of(rendered, rendered.fetcher, staging)
    assert dest_mount["name"] == staging_mount["name"] == "model-repository"
    assert not dest_mount.get("readOnly")
    assert not PurePosixPath(staging).is_relative_to(dest)
    triton_root = next(a.split("=", 1)[1] for a in rendered.triton["args"] if a.startswith("--model-repository="))
    assert triton_root == dest
    assert mount_of(rendered, rendered.triton, triton_root)[0]["name"] == "model-repository"


def test_each_secret_file_is_at_secrets_dir_name_key(render):
    rendered = render(FULL)
    secrets_dir = arg(rendered.fetcher, "--secrets-dir")
    for name in ("ngc-model-pull", "access-key-secret-name", "secret-key-secret-name"):
        mount, relative = mount_of(rendered, rendered.fetcher, f"{secrets_dir}/{name}/{name}")
        assert mount["volume"]["secret"]["secretName"] == name
        assert relative == name  # the key, projected as a file of the same name


def test_each_claim_is_at_volumes_dir_repository_name_in_both_containers(render):
    # FULL's lease is the S3 example's; a model of the volume makes the chart mount its claim.
    models = FULL["lease"]["models"] + ["name=volume_model,uri=model://volume-models/my_model"]
    rendered = render(merge_values(FULL, {"lease": {"models": models}}))
    volumes_dir = arg(rendered.fetcher, "--volumes-dir")
    for container in (rendered.fetcher, rendered.triton):
        mount, relative = mount_of(rendered, container, f"{volumes_dir}/volume-models/my_model")
        assert mount["volume"]["persistentVolumeClaim"]["claimName"] == "example-volume-claim"
        assert relative == "my_model"


def fetcher_available(module: str = "fetcher.cli.main") -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def run_rendered_fetcher(rendered, tmp_path, *, claims=None, secrets=None, config_maps=None):
    """Run the init container's command and args with each mount path rewritten to a local folder
    (devkit.pod's fallback mode; tests/test_pod_contract.py runs the same pod with real mounts).

    claims: {claimName: folder}; secrets: {secretName: {key: text}}; config_maps: {name: {key: text}}.
    Returns (the finished container run, the local --dest folder).
    """
    pod = LocalPod(rendered.pod, tmp_path / "pod", config_maps={**rendered.config_maps(), **(config_maps or {})},
                   secrets=secrets, claims=claims, mode=REWRITE)
    run = pod.run(rendered.fetcher, timeout=120)
    return run, pod.local_path(rendered.fetcher, arg(rendered.fetcher, "--dest"))


def model_zip(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{name}/config.pbtxt", f'name: "{name}"\nbackend: "python"\n')
        archive.writestr(f"{name}/1/model.py", "# model\n")
    return buffer.getvalue()


@pytest.fixture
def https_server(tmp_path):
    """An HTTPS server (its own trustme CA) that serves /models/<name>.zip to one Authorization."""
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    token = "Bearer lease-t0ken"
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(self.headers.get("Authorization"))
            if self.headers.get("Authorization") != token:
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = model_zip(self.path.rsplit("/", 1)[1].removesuffix(".zip"))
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"https://127.0.0.1:{server.server_address[1]}", "token": token,
           "ca": authority.cert_pem.bytes().decode(), "seen": seen}
    server.shutdown()
    server.server_close()


@pytest.mark.skipif(not fetcher_available(), reason="the model fetcher is not installed yet")
def test_rendered_command_fetches_the_lease_over_https_with_its_secret_and_ca(render, tmp_path, https_server):
    values = {
        "server": {"modelRepositories": {"https": [{"secretName": "lease-pull", "targetUri": "127.0.0.1/models"}]}},
        "lease": {"models": [f"name=my_model,uri={https_server['url']}/models/my_model.zip",
                             {"name": "renamed", "uri": f"{https_server['url']}/models/other.zip"}]},
        "fetcher": {"caBundle": {"configMapName": "test-ca", "key": "ca.pem"}},
    }
    rendered = render(values)
    result, dest = run_rendered_fetcher(
        rendered, tmp_path,
        secrets={"lease-pull": {"lease-pull": https_server["token"]}},
        config_maps={"test-ca": {"ca.pem": https_server["ca"]}},
    )
    assert result.returncode == 0, result.output
    assert sorted(p.name for p in dest.iterdir()) == ["my_model", "renamed"]
    assert (dest / "my_model" / "1" / "model.py").exists()
    assert 'name: "renamed"' in (dest / "renamed" / "config.pbtxt").read_text()
    assert https_server["token"] in https_server["seen"]
    assert https_server["token"] not in result.output


@pytest.mark.skipif(not fetcher_available(), reason="the model fetcher is not installed yet")
def test_rendered_command_fails_cleanly_when_the_optional_secret_is_absent(render, tmp_path, https_server):
    values = {
        "server": {"modelRepositories": {"https": [{"secretName": "lease-pull", "targetUri": "127.0.0.1"}]}},
        "lease": {"models": [f"name=my_model,uri={https_server['url']}/models/my_model.zip"]},
        "fetcher": {"caBundle": {"configMapName": "test-ca", "key": "ca.pem"}},
    }
    result, dest = run_rendered_fetcher(render(values), tmp_path, config_maps={"test-ca": {"ca.pem": https_server["ca"]}})
    assert result.returncode != 0
    assert "my_model" in result.termination_message
    assert not (dest / "my_model").exists()


@pytest.mark.skipif(not fetcher_available("fetcher.sources.volume"), reason="the fetcher's volume source is not written yet")
def test_rendered_command_fetches_the_lease_from_a_volume(render, tmp_path):
    rendered = render(merge_values(load_example("ref-volumes.yaml"), {"server": {"modelRepositories": {"https": []}}}))
    claim = tmp_path / "claim"
    (claim / "my_model" / "1").mkdir(parents=True)
    (claim / "my_model" / "config.pbtxt").write_text('name: "my_model"\nbackend: "python"\n')
    (claim / "my_model" / "1" / "model.py").write_text("# model\n")
    result, dest = run_rendered_fetcher(rendered, tmp_path, claims={"example-volume-claim": claim})
    assert result.returncode == 0, result.output
    assert [p.name for p in dest.iterdir()] == ["my_model"]
    assert (dest / "my_model" / "1" / "model.py").exists()

"""The pod contract: what the chart renders and what the fetcher and Triton do fit together.

The rendered Deployment's pod runs here (devkit.pod): the init container's command, args and env
exactly as rendered, with every volumeMount bind-mounted at its mountPath in a private mount
namespace (or, without the privilege, every such path rewritten), then the Triton container's
arguments on the same emptyDir. So a mount path or an argument changed in the chart that the
fetcher or Triton does not follow fails here; the negative cases prove it by altering the rendered
pod spec the way such a chart change would.
"""

from __future__ import annotations

import os

from typing import Any, Iterator

import pytest

from devkit.chart import Rendered, render_chart
from devkit.demo import HTTPS_SECRET, NAMESPACE, RELEASE, TOKEN, DemoSources, demo_sources, run_pod
from devkit.pod import namespaces_available
from devkit.s3_server import TEST_SECRET_KEY
from tests.support.lanes import every_lane

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoSources]:
    with demo_sources(tmp_path_factory.mktemp("pod-contract-sources")) as running:
        yield running


def render(sources: DemoSources, **overrides: Any) -> Rendered:
    values = sources.values()
    values.update(overrides)
    return render_chart(values, name=RELEASE, namespace=NAMESPACE)


def assert_no_secret_leaked(text: str) -> None:
    assert TOKEN not in text
    assert TEST_SECRET_KEY not in text


@every_lane
def test_the_rendered_pod_fetches_the_three_sources_and_triton_serves_them(sources, tmp_path, fetcher_install):
    run = run_pod(render(sources), sources, tmp_path / "pod", install=fetcher_install)
    assert run.init.returncode == 0, run.init.output
    assert sorted(run.installed) == ["https_model", "s3_model", "volume_model"]
    assert run.triton_started
    for model in sources.models:
        ready, output = run.served[model.name]
        assert ready, model.name
        assert output == model.expected(), model.name
    assert {plan["name"]: plan["source"] for plan in run.explain} == {
        "https_model": "https", "s3_model": "s3", "volume_model": "volume"}
    assert run.init.termination_message == ""
    assert_no_secret_leaked(run.init.output)
    # Triton ran with the rendered repository root, not a path chosen here.
    assert "--model-repository=/models/repository" in run.triton_args or run.mode == "rewrite"


def _mount(container: dict[str, Any], path: str) -> dict[str, Any]:
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == path]
    return mount


def _fetcher_mount_moved(old: str, new: str):
    def alter(rendered: Rendered) -> None:
        _mount(rendered.fetcher, old)["mountPath"] = new
    return alter


def _fetcher_arg_changed(flag: str, value: str):
    def alter(rendered: Rendered) -> None:
        args = rendered.fetcher["args"]
        args[args.index(flag) + 1] = value
    return alter


CHART_CHANGES_THE_FETCHER_DOES_NOT_FOLLOW = {
    "secret mounted elsewhere": (_fetcher_mount_moved(
        f"/var/run/secrets/model-fetcher/{HTTPS_SECRET}", f"/var/run/secrets/model-pull/{HTTPS_SECRET}"),
        ["https_model"]),
    "claim mounted elsewhere": (_fetcher_mount_moved(
        "/mnt/model-volumes/demo-volume", "/mnt/claims/demo-volume"), ["volume_model"]),
    "config mounted elsewhere": (_fetcher_mount_moved("/etc/model-fetcher", "/etc/fetcher"), ["values.yaml"]),
    "CA bundle mounted elsewhere": (_fetcher_mount_moved("/etc/model-fetcher-ca", "/etc/ssl/model-ca"),
                                    ["https_model", "s3_model"]),
    "--secrets-dir argument changed": (_fetcher_arg_changed("--secrets-dir", "/var/run/secrets/fetcher"),
                                       ["https_model", "s3_model"]),
    "--volumes-dir argument changed": (_fetcher_arg_changed("--volumes-dir", "/mnt/volumes"), ["volume_model"]),
}


@pytest.mark.parametrize("change", sorted(CHART_CHANGES_THE_FETCHER_DOES_NOT_FOLLOW))
def test_a_chart_change_the_fetcher_does_not_follow_fails_the_init_step(sources, tmp_path, fetcher_install, change):
    alter, named = CHART_CHANGES_THE_FETCHER_DOES_NOT_FOLLOW[change]
    rendered = render(sources)
    alter(rendered)
    run = run_pod(rendered, sources, tmp_path / "pod", install=fetcher_install)
    assert run.init.returncode != 0, f"the fetcher succeeded despite: {change}\n{run.init.output}"
    assert not run.triton_started
    reported = run.init.termination_message + run.init.output
    for word in named:
        assert word in reported, f"{word!r} not in:\n{reported}"


def test_triton_must_find_the_repository_where_the_chart_mounts_it(sources, tmp_path, fetcher_install):
    rendered = render(sources)
    _mount(rendered.triton, "/models")["mountPath"] = "/srv/models"
    with pytest.raises(RuntimeError, match="tritonserver exited"):
        run_pod(rendered, sources, tmp_path / "pod", install=fetcher_install)


@pytest.mark.skipif(not namespaces_available(), reason="needs mount namespaces: with rewritten paths the "
                    "link resolves on this machine whatever Triton mounts")
def test_triton_must_see_the_claim_that_a_volume_model_links_to(sources, tmp_path, fetcher_install):
    rendered = render(sources)
    rendered.triton["volumeMounts"].remove(_mount(rendered.triton, "/mnt/model-volumes/demo-volume"))
    with pytest.raises(RuntimeError, match="failed to load all models"):
        run_pod(rendered, sources, tmp_path / "pod", install=fetcher_install)
    log = (tmp_path / "pod" / "triton.log").read_text()
    assert "volume_model" in log  # the link into the claim does not resolve


@every_lane
def test_a_missing_secret_fails_the_init_step_with_the_reason_and_triton_does_not_start(sources, tmp_path,
                                                                                       fetcher_install):
    secrets = {name: data for name, data in sources.secrets().items() if name != HTTPS_SECRET}
    run = run_pod(render(sources), sources, tmp_path / "pod", install=fetcher_install, secrets=secrets)
    assert run.init.returncode != 0
    assert not run.triton_started
    message = run.init.termination_message
    assert "https_model" in message and HTTPS_SECRET in message, message
    assert "s3_model" not in message and "volume_model" not in message  # those were fetched
    assert_no_secret_leaked(message + run.init.output)


def test_a_missing_s3_object_fails_the_init_step_with_the_reason_and_triton_does_not_start(sources, tmp_path,
                                                                                         fetcher_install):
    lease = {"models": ["name=absent_model,uri=model://demo-s3/parent/absent_model",
                        "name=https_model,uri=" + sources.models[0].uri]}
    run = run_pod(render(sources, lease=lease), sources, tmp_path / "pod", install=fetcher_install)
    assert run.init.returncode != 0
    assert not run.triton_started
    message = run.init.termination_message
    assert "absent_model" in message and "parent/absent_model" in message, message
    assert "https_model" not in message
    assert_no_secret_leaked(message + run.init.output)


def test_the_local_pod_leaves_no_mount_points_behind(sources, tmp_path, fetcher_install):
    mount_points = ("/models", "/etc/model-fetcher", "/etc/model-fetcher-ca", "/mnt/model-volumes",
                    "/var/run/secrets/model-fetcher", "/home/triton-server")
    # Only what this pod creates is its to remove: a folder that was there before is left alone.
    absent_before = [path for path in mount_points if not os.path.lexists(path)]
    run_pod(render(sources), sources, tmp_path / "pod", install=fetcher_install)
    for path in absent_before:
        assert not os.path.lexists(path), f"{path} was left behind"


@every_lane
def test_the_rendered_sidecar_pod_keeps_model_control_to_its_sidecar(sources, tmp_path, fetcher_install):
    """Sidecar mode as rendered: the generated key reaches Triton's args through the env and the
    kubelet's $(VAR) expansion, and the sidecar through its mount; a request without the key is
    refused, while the sidecar unloads a model the lease dropped."""
    import base64
    import json

    import yaml

    from devkit.chart import merge_values
    from devkit.pod import LocalPod
    from devkit.ports import free_port
    from devkit.processes import stop_process
    from devkit.triton import wait_until

    values = merge_values(sources.values(), {"fetcher": {"mode": "sidecar", "sidecar": {"pollSeconds": 1}},
                                             "kubeVersionOverride": "1.33.0"})
    rendered = render_chart(values, name=RELEASE, namespace=NAMESPACE)
    secret = rendered.one("Secret")
    key = base64.b64decode(secret["data"]["key"]).decode()
    secrets = {**sources.secrets(), secret["metadata"]["name"]: {"key": key}}
    http_port = free_port()
    fetcher = rendered.fetcher
    args = list(fetcher["args"])
    args[args.index("--triton-url") + 1] = f"http://localhost:{http_port}"  # Triton's port moves to a free one
    with LocalPod(rendered.pod, tmp_path / "pod", config_maps={**rendered.config_maps(), **sources.config_maps()},
                  secrets=secrets, claims=sources.claims, install=fetcher_install) as pod:
        status_file = pod.local_path(fetcher, "/tmp/model-fetcher-status.json")
        log_path = tmp_path / "sidecar.log"
        with open(log_path, "wb") as log:
            sidecar = pod.start(fetcher, args=args, stdout=log)
        try:
            def sidecar_ready() -> bool:
                assert sidecar.poll() is None, log_path.read_text()
                return status_file.exists() and json.loads(status_file.read_text()).get("ready") is True

            wait_until(sidecar_ready, timeout=120, what="the sidecar's initial sync")
            probe = fetcher["startupProbe"]["exec"]["command"]
            assert pod.run(fetcher, timeout=30, command=probe[:1], args=probe[1:]).returncode == 0
            with pod.serve_triton(rendered.triton, tmp_path / "triton.log", http_port=http_port) as triton:
                for model in sources.models:
                    assert triton.model_ready(model.name), model.name
                for headers in ({}, {"model-control-key": "guess"}):
                    assert triton.post("/v2/repository/models/s3_model/unload", headers=headers)[0] == 403
                assert triton.model_ready("s3_model")
                # The lease drops s3_model: the kubelet updates the ConfigMap's file, the sidecar unloads it.
                lease = pod.local_path(fetcher, "/etc/model-fetcher/values.yaml")
                fetcher_values = yaml.safe_load(lease.read_text())
                fetcher_values["lease"]["models"] = [m for m in fetcher_values["lease"]["models"] if "s3_model" not in m]
                lease.write_text(yaml.safe_dump(fetcher_values))
                wait_until(lambda: not triton.model_ready("s3_model"), timeout=60, what="s3_model to be unloaded")
                assert triton.model_ready("https_model") and triton.model_ready("volume_model")
                assert key not in triton.log()
        finally:
            stop_process(sidecar)
    output = log_path.read_text()
    assert "model=s3_model event=removed unloaded=true" in output
    assert key not in output
    assert_no_secret_leaked(output)

"""fetcher.mode: sidecar renders a native sidecar, Triton in explicit mode, a checksum without the models.

helm-python-sdk's render reports Kubernetes v1.36 whatever the cluster, so every render here says
its version explicitly with kubeVersionOverride.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import kubernetes_validate
import pytest

from conftest import OLDEST_KUBERNETES, load_example, merge_values
from fetcher.cli.main import build_parser
from test_kubernetes_schemas import FULL
from test_kubernetes_schemas import NEWEST_KUBERNETES as _NEWEST

NEWEST_KUBERNETES = ".".join(_NEWEST.split(".")[:3])  # kubernetes-validate's newest, as x.y.z

FIRST_SIDECAR_KUBERNETES = "1.29.0"
STATUS_FILE = "/tmp/model-fetcher-status.json"
MODELS = {"lease": {"models": ["name=a,uri=https://h/a.zip", {"name": "b", "uri": "https://h/b.zip"}]}}


def sidecar(version: str = NEWEST_KUBERNETES, *layers: dict) -> dict:
    return merge_values({"fetcher": {"mode": "sidecar"}, "kubeVersionOverride": version}, *layers)


def checksum(render, values: dict) -> str:
    return render(values).deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


def arg(container: dict, flag: str) -> str:
    args = container["args"]
    return args[args.index(flag) + 1]


def test_the_fetcher_is_a_native_sidecar_running_watch(render):
    rendered = render(sidecar(NEWEST_KUBERNETES, MODELS))
    fetcher = rendered.fetcher
    assert fetcher["restartPolicy"] == "Always"
    assert fetcher["command"] == ["model-fetcher"] and fetcher["args"][0] == "watch"
    assert arg(fetcher, "--triton-url") == "http://localhost:8000"
    assert arg(fetcher, "--poll-interval") == "10"
    assert arg(fetcher, "--triton-timeout") == "600"
    assert arg(fetcher, "--retry-interval") == "60"
    assert arg(fetcher, "--status-file") == STATUS_FILE
    assert [c["name"] for c in rendered.pod["initContainers"]] == ["model-fetcher"]
    assert [c["name"] for c in rendered.pod["containers"]] == ["triton"]


def test_the_startup_probe_passes_only_on_the_status_of_the_initial_sync(render):
    probe = render(sidecar()).fetcher["startupProbe"]
    assert probe["exec"]["command"] == ["model-fetcher", "status", "--status-file", STATUS_FILE]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 3600
    tuned = render(sidecar(NEWEST_KUBERNETES, {"fetcher": {"sidecar": {"startupProbe": {"failureThreshold": 10}}}}))
    assert tuned.fetcher["startupProbe"]["failureThreshold"] == 10


def test_rendered_command_and_probe_are_accepted_by_the_fetchers_parser(render):
    rendered = render(sidecar(NEWEST_KUBERNETES, {"fetcher": {"caBundle": {"configMapName": "corp-ca"},
                                                              "extraArgs": ["--log-level", "DEBUG"]}}))
    fetcher = rendered.fetcher
    args = build_parser().parse_args(fetcher["args"])
    assert args.command == "watch" and args.log_level == "DEBUG" and args.poll_interval == 10.0
    status = build_parser().parse_args(fetcher["startupProbe"]["exec"]["command"][1:])
    assert status.command == "status" and str(status.status_file) == str(args.status_file)
    # The status file is on the fetcher's own writable /tmp (per pod, not the shared repository volume).
    mounts = rendered.mounts(fetcher)
    assert PurePosixPath(STATUS_FILE).parent == PurePosixPath("/tmp") and not mounts["/tmp"].get("readOnly")
    assert mounts["/tmp"]["volume"]["emptyDir"] == {}


def test_the_triton_flags_are_those_the_watch_tests_run_the_real_triton_with(render):
    from watch_pod import MODEL_CONTROL_HEADER, TRITON_ARGS, restricted_args

    rendered = render(sidecar())
    args = rendered.triton["args"]
    assert [a for a in args if a in TRITON_ARGS] == TRITON_ARGS
    # The restriction, with the key the kubelet substitutes from the env.
    assert [a for a in args if "restricted" in a] == restricted_args("$(TRITON_MODEL_CONTROL_KEY)")
    assert arg(rendered.fetcher, "--triton-auth-header") == MODEL_CONTROL_HEADER


def test_triton_runs_in_explicit_mode_and_loads_the_repository_at_start(render):
    rendered = render(sidecar(NEWEST_KUBERNETES, MODELS, {"triton": {"extraArgs": ["--log-verbose=1"]}}))
    args = rendered.triton["args"]
    assert "--model-control-mode=explicit" in args and "--load-model=*" in args
    assert "--strict-readiness=false" in args
    assert not any(a.startswith("--load-model=") and a != "--load-model=*" for a in args)
    assert args[-1] == "--log-verbose=1"


def test_the_sidecar_reaches_triton_on_its_http_port(render):
    rendered = render(sidecar(NEWEST_KUBERNETES, {"triton": {"ports": {"http": 9000}}}))
    assert arg(rendered.fetcher, "--triton-url") == "http://localhost:9000"
    assert "--http-port=9000" in rendered.triton["args"]


def test_sidecar_settings_reach_the_command_line(render):
    fetcher = render(sidecar(NEWEST_KUBERNETES, {"fetcher": {"sidecar": {
        "pollSeconds": 3, "tritonTimeoutSeconds": 120, "retrySeconds": 30}}})).fetcher
    assert (arg(fetcher, "--poll-interval"), arg(fetcher, "--triton-timeout"), arg(fetcher, "--retry-interval")) == \
        ("3", "120", "30")


def test_init_mode_is_unchanged(render):
    rendered = render({"kubeVersionOverride": NEWEST_KUBERNETES, **MODELS})
    assert rendered.fetcher["args"][0] == "fetch"
    assert "restartPolicy" not in rendered.fetcher and "startupProbe" not in rendered.fetcher
    assert not any(a.startswith(("--model-control-mode", "--load-model", "--strict-readiness"))
                   for a in rendered.triton["args"])
    assert "--triton-url" not in rendered.fetcher["args"]


def test_checksum_leaves_the_models_out_in_sidecar_mode_only(render):
    one = {"lease": {"models": ["name=a,uri=https://h/a.zip"]}}
    two = {"lease": {"models": ["name=a,uri=https://h/a2.zip", "name=b,uri=https://h/b.zip"]}}
    assert checksum(render, sidecar(NEWEST_KUBERNETES, one)) == checksum(render, sidecar(NEWEST_KUBERNETES, two))
    assert checksum(render, sidecar(NEWEST_KUBERNETES, one)) == checksum(render, sidecar(NEWEST_KUBERNETES, {}))
    # ... but the repositories and security still roll the pods (they change mounts and credentials).
    role = {"server": {"security": {"aws": {"role": "arn:aws:iam::123456789012:role/r"}}}}
    assert checksum(render, sidecar(NEWEST_KUBERNETES, one)) != checksum(render, sidecar(NEWEST_KUBERNETES, one, role))
    # In init mode a model change still restarts the pods.
    assert checksum(render, one) != checksum(render, two)
    # The ConfigMap itself carries the models in both modes: that is how they reach the sidecar.
    assert render(sidecar(NEWEST_KUBERNETES, two)).fetcher_values["lease"]["models"] == two["lease"]["models"]


@pytest.mark.parametrize("version", ["1.25.0", "1.28.9", "v1.28.15-eks-1234"])
def test_older_clusters_refuse_sidecar_mode(render_error, version):
    message = render_error(sidecar(version))
    assert "fetcher.mode=sidecar needs Kubernetes 1.29 or newer" in message
    assert "fetcher.mode=init" in message and "kubeVersionOverride" in message


@pytest.mark.parametrize("version", ["1.29.0", "v1.29.1-eks-5e0fdde", "1.30.0-gke.1", "1.33.2"])
def test_native_sidecar_versions_accept_sidecar_mode_including_prereleases(render, version):
    assert render(sidecar(version)).fetcher["restartPolicy"] == "Always"


def test_without_an_override_the_version_helm_reports_is_used(render):
    # helm-python-sdk reports v1.36: sidecar mode renders.
    assert render({"fetcher": {"mode": "sidecar"}}).fetcher["restartPolicy"] == "Always"


def test_init_mode_renders_on_the_oldest_cluster(render):
    assert render({"kubeVersionOverride": OLDEST_KUBERNETES}).fetcher["args"][0] == "fetch"


def test_triton_model_control_flags_conflict_with_sidecar_mode(render_error):
    message = render_error(sidecar(NEWEST_KUBERNETES, {"triton": {"extraArgs": ["--model-control-mode=poll"]}}))
    assert "--model-control-mode=poll" in message and "conflicts with fetcher.mode=sidecar" in message


@pytest.mark.parametrize("values", [
    {"fetcher": {"mode": "daemon"}},
    {"fetcher": {"sidecar": {"pollSeconds": 0}}},
    {"fetcher": {"sidecar": {"unknown": 1}}},
    {"kubeVersionOverride": "latest"},
])
def test_schema_refuses_bad_sidecar_values(render_error, values):
    render_error(values)


@pytest.mark.parametrize("version", [FIRST_SIDECAR_KUBERNETES, NEWEST_KUBERNETES])
@pytest.mark.parametrize("layers", [
    pytest.param([], id="defaults"),
    pytest.param([FULL], id="full"),
    pytest.param([load_example("ref-volumes.yaml")], id="volumes"),
])
def test_sidecar_manifests_are_valid_kubernetes(render, version, layers):
    manifests = render(sidecar(version, *layers)).manifests()
    for manifest in manifests:
        kubernetes_validate.validate(manifest, version, strict=True)


def test_the_oldest_claimed_version_has_no_native_sidecars(render):
    """Why the gate exists: the 1.25 schema has no restartPolicy for containers."""
    deployment = render(sidecar(NEWEST_KUBERNETES)).deployment
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, OLDEST_KUBERNETES, strict=True)


def test_notes_explain_the_sidecar_and_its_status(render):
    notes = render(sidecar(NEWEST_KUBERNETES, MODELS)).notes
    assert 'native sidecar "model-fetcher"' in notes and "without a restart" in notes
    assert f"model-fetcher status --status-file {STATUS_FILE}" in notes
    assert 'the init container "model-fetcher"' in render({"kubeVersionOverride": NEWEST_KUBERNETES}).notes

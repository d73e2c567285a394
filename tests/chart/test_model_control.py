"""Sidecar mode: Triton's model repository API demands a key from a Secret, which the sidecar sends.

The Secret is generated once by the chart (its value looked up and kept on upgrade) or is the
user's own. The key reaches Triton through an env var from secretKeyRef and the kubelet's
``$(VAR)`` expansion, and the sidecar through a mounted file: it is in no rendered argument.
"""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import helm_python
import pytest
import yaml

from conftest import CHART_DIR, FULLNAME, NAMESPACE, RELEASE, merge_values
from fetcher.cli.main import build_parser

SECRET_NAME = f"{FULLNAME}-model-control"
ENV = "TRITON_MODEL_CONTROL_KEY"
KEY_DIR = "/etc/model-fetcher-control"


def sidecar(*layers: dict) -> dict:
    return merge_values({"fetcher": {"mode": "sidecar"}, "kubeVersionOverride": "1.33.0"}, *layers)


def generated_key(rendered) -> str:
    secret = rendered.one("Secret")
    return base64.b64decode(secret["data"]["key"]).decode()


def test_the_chart_generates_a_kept_secret_with_a_random_key(render):
    rendered = render(sidecar())
    secret = rendered.one("Secret")
    assert secret["metadata"]["name"] == SECRET_NAME and secret["metadata"]["namespace"] == NAMESPACE
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert secret["metadata"]["labels"]["app.kubernetes.io/component"] == "model-control"
    assert secret["type"] == "Opaque" and list(secret["data"]) == ["key"]
    assert re.fullmatch(r"[A-Za-z0-9]{48}", generated_key(rendered))
    # No cluster to look up here (as under `helm template`): each render draws a new key.
    assert generated_key(render(sidecar())) != generated_key(rendered)


def test_the_key_is_in_no_rendered_argument_only_in_the_secret(render):
    rendered = render(sidecar())
    key = generated_key(rendered)
    encoded = rendered.one("Secret")["data"]["key"]
    others = [text for path, text in rendered.files.items() if not path.endswith("model-control-secret.yaml")]
    assert not any(key in text or encoded in text for text in others)


def test_triton_gets_the_key_from_the_secret_through_its_env(render):
    rendered = render(sidecar({"triton": {"env": [{"name": "CUDA_VISIBLE_DEVICES", "value": "0"}]}}))
    env = rendered.triton["env"]
    assert env[0] == {"name": ENV, "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": "key"}}}
    assert env[-1] == {"name": "CUDA_VISIBLE_DEVICES", "value": "0"}  # the user's env follows
    restricted = [a for a in rendered.triton["args"] if "restricted" in a]
    groups = "model-repository,trace,logging"
    assert restricted == [f"--http-restricted-api={groups}:model-control-key=$({ENV})",
                          f"--grpc-restricted-protocol={groups}:model-control-key=$({ENV})"]
    # The kubelet expands $(VAR) only from variables defined earlier in the container's env.
    assert ENV in [item["name"] for item in env]


def test_the_sidecar_reads_the_key_from_its_mount_and_sends_the_header(render):
    rendered = render(sidecar())
    fetcher = rendered.fetcher
    args = build_parser().parse_args(fetcher["args"])
    assert args.triton_auth_header == "model-control-key"
    assert str(args.triton_auth_file) == f"{KEY_DIR}/key"
    mount = rendered.mounts(fetcher)[KEY_DIR]
    assert mount["readOnly"] is True
    assert mount["volume"]["secret"] == {"secretName": SECRET_NAME, "items": [{"key": "key", "path": "key"}]}
    assert KEY_DIR not in rendered.mounts(rendered.triton)  # Triton has it from its env only
    assert not any(item.get("valueFrom") for item in fetcher.get("env", []))


def test_the_users_own_secret_replaces_the_generated_one(render):
    rendered = render(sidecar({"fetcher": {"sidecar": {"modelControl": {
        "secret": {"name": "my-control", "key": "token"}, "header": "x-admin", "restrictedApis": ["model-repository"]}}}}))
    assert rendered.kind("Secret") == []
    assert rendered.triton["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "my-control", "key": "token"}
    assert rendered.mounts(rendered.fetcher)[KEY_DIR]["volume"]["secret"] == {
        "secretName": "my-control", "items": [{"key": "token", "path": "key"}]}
    assert f"--http-restricted-api=model-repository:x-admin=$({ENV})" in rendered.triton["args"]
    assert build_parser().parse_args(rendered.fetcher["args"]).triton_auth_header == "x-admin"


def test_init_mode_has_no_key_and_no_restriction(render):
    rendered = render({"kubeVersionOverride": "1.33.0"})
    assert rendered.kind("Secret") == []
    assert not any("restricted" in a for a in rendered.triton["args"])
    assert ENV not in [item["name"] for item in rendered.triton.get("env", [])]
    assert KEY_DIR not in rendered.mounts(rendered.fetcher)
    assert "--triton-auth-file" not in rendered.fetcher["args"]


@pytest.mark.parametrize("control", [
    {"restrictedApis": ["trace"]},  # the repository API must be restricted
    {"restrictedApis": ["model-repository", "health"]},  # the probes carry no header
    {"restrictedApis": ["model-repository", "model-repository"]},
    {"restrictedApis": ["model-repository", "model_repository"]},
    {"header": "bad header"},
    {"header": ""},
    {"secret": {"name": "Not_A_Name", "key": "key"}},
    {"secret": {"name": "", "key": "a/b"}},
    {"unknown": True},
])
def test_schema_refuses_bad_model_control_values(render_error, control):
    render_error(sidecar({"fetcher": {"sidecar": {"modelControl": control}}}))


def test_an_extra_restriction_of_the_same_group_is_refused(render_error, render):
    message = render_error(sidecar({"triton": {"extraArgs": ["--http-restricted-api=trace,statistics:k=v"]}}))
    assert 'API group "trace"' in message and "fetcher.sidecar.modelControl.restrictedApis" in message
    # Another group is Triton's to restrict with another key.
    rendered = render(sidecar({"triton": {"extraArgs": ["--http-restricted-api=statistics:k=v"]}}))
    assert rendered.triton["args"][-1] == "--http-restricted-api=statistics:k=v"


# Lookup semantics -------------------------------------------------------------------------------
# helm-python-sdk renders without a cluster, so `lookup` finds nothing there. The choice between
# the value in the cluster and a new one is the helper below; it is rendered here by the real
# Helm engine, in a copy of the chart, with a looked-up Secret made up as `lookup` returns it.

PROBE = """\
{{- $found := dict "apiVersion" "v1" "kind" "Secret" "data" (dict "key" "a2VwdC12YWx1ZQ==") }}
kept: {{ include "triton-lease.modelControlValue" (dict "existing" $found "key" "key") | quote }}
otherKey: {{ include "triton-lease.modelControlValue" (dict "existing" $found "key" "token") | quote }}
absent: {{ include "triton-lease.modelControlValue" (dict "existing" dict "key" "key") | quote }}
"""


def test_an_upgrade_keeps_the_value_of_the_secret_in_the_cluster(tmp_path: Path):
    chart_dir = tmp_path / "chart"
    shutil.copytree(CHART_DIR, chart_dir)
    (chart_dir / "templates" / "zz-probe.yaml").write_text(PROBE)
    files = helm_python.Chart.load(chart_dir).render(sidecar(), name=RELEASE, namespace=NAMESPACE, is_upgrade=True)
    probe = yaml.safe_load(next(text for path, text in files.items() if path.endswith("zz-probe.yaml")))
    assert base64.b64decode(probe["kept"]) == b"kept-value"
    for fresh in (probe["otherKey"], probe["absent"]):
        assert re.fullmatch(r"[A-Za-z0-9]{48}", base64.b64decode(fresh).decode())
    # And the Secret's template takes its value through that helper, from a lookup of its own name.
    template = (CHART_DIR / "templates" / "model-control-secret.yaml").read_text()
    assert ('include "triton-lease.modelControlValue" (dict "existing" (lookup "v1" "Secret" '
            '.Release.Namespace $name) "key" $control.secret.key)') in template

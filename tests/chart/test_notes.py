"""NOTES.txt tells how to reach Triton and check each leased model, and shows no credential."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FULLNAME, NAMESPACE


def test_notes_show_the_service_and_each_model(render):
    notes = render({"lease": {"models": ["name=alpha,uri=https://h/a.zip", {"name": "beta", "uri": "https://h/b.zip"}]}}).notes
    assert f"http://{FULLNAME}.{NAMESPACE}.svc:8000" in notes
    assert f"port-forward service/{FULLNAME}" in notes
    assert "/v2/models/alpha/ready" in notes
    assert "/v2/models/beta/ready" in notes
    assert "helm test lease1" in notes


def test_notes_without_models_say_so(render):
    notes = render({}).notes
    assert "/v2/models/" not in notes
    assert "lease.models" in notes


def test_notes_never_print_credentials_in_model_urls(render):
    notes = render({"lease": {"models": ["name=private,uri=https://user:s3cr3t@h.example.com/p.zip"]}}).notes
    assert "s3cr3t" not in notes
    assert "/v2/models/private/ready" in notes


def test_notes_list_secret_names_not_contents(render):
    notes = render({"server": {"modelRepositories": {"S3": [
        {"repositoryName": "r", "bucketName": "tms-models", "awsRegion": "us-west-2",
         "accessKey": "access-key-secret-name", "secretKey": "secret-key-secret-name"}]}}}).notes
    assert "access-key-secret-name" in notes and "secret-key-secret-name" in notes
    assert "kubectl get secret" not in notes and "base64" not in notes


def failure_command(notes: str) -> str:
    return next(line for line in notes.splitlines() if "-o jsonpath=" in line)


@pytest.mark.parametrize("mode", ["init", "sidecar"])
def test_failure_reason_is_read_from_the_fetcher_by_name_including_its_last_run(render, mode):
    command = failure_command(render({"fetcher": {"mode": mode}}).notes)
    # Selected by name: the statuses' order is no contract. lastState: during CrashLoopBackOff the
    # current state is "waiting" and only the last run's termination holds the message.
    assert 'initContainerStatuses[?(@.name=="model-fetcher")]' in command
    assert "{.lastState.terminated.message}" in command
    assert "{.state.terminated.message}" in command
    assert "[0]" not in command


# kubectl from the virtual environment when it holds one, else from PATH.
KUBECTL = shutil.which("kubectl", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def kubectl_jsonpath(obj: dict, template: str, tmp_path: Path) -> str:
    """What `kubectl ... -o jsonpath=TEMPLATE` prints for obj: kubectl's own JSONPath, no cluster
    (`label --local` only reads the file and prints it back through the printer)."""
    source = tmp_path / "object.json"
    source.write_text(json.dumps(obj), encoding="utf-8")
    result = subprocess.run(
        [KUBECTL, "label", "--local", "-f", str(source), "notes-test=1", "-o", f"jsonpath={template}"],
        env={**os.environ, "KUBECONFIG": str(tmp_path / "no-kubeconfig")},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def pod(name: str, statuses: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "triton", "image": "tritonserver"}]},
            "status": {"initContainerStatuses": statuses}}


REASON = "model 'a': HTTP 404 from https://h/a.zip"
CRASH_LOOP = {"name": "model-fetcher", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
              "lastState": {"terminated": {"exitCode": 1, "message": REASON}}}
JUST_FAILED = {"name": "model-fetcher", "state": {"terminated": {"exitCode": 1, "message": REASON}}}
OTHER_FIRST = {"name": "istio-init", "state": {"terminated": {"exitCode": 0, "message": "done"}}}


@pytest.mark.skipif(KUBECTL is None, reason="needs kubectl")
@pytest.mark.parametrize("mode", ["init", "sidecar"])
@pytest.mark.parametrize("statuses", [[CRASH_LOOP], [JUST_FAILED], [OTHER_FIRST, CRASH_LOOP]],
                         ids=["crash-loop", "just-failed", "not-first"])
def test_failure_command_prints_the_reason_with_kubectl(render, tmp_path, mode, statuses):
    command = failure_command(render({"fetcher": {"mode": mode}}).notes)
    template = re.search(r"-o jsonpath='(.*)'", command).group(1)
    # kubectl applies the template to the list; `label --local` prints each pod by itself, so the
    # per-pod part inside {range .items[*]}...{end} is what runs here.
    assert template.startswith("{range .items[*]}") and template.endswith("{end}")
    per_pod = template.removeprefix("{range .items[*]}").removesuffix("{end}")
    printed = kubectl_jsonpath(pod("lease1-triton-lease-abc", statuses), per_pod, tmp_path)
    assert printed == f"lease1-triton-lease-abc:\n{REASON}\n"


@pytest.mark.skipif(KUBECTL is None, reason="needs kubectl")
def test_first_status_state_misses_the_reason_in_a_crash_loop(tmp_path):
    # What NOTES printed before: nothing while the fetcher crash-loops, or another container's message.
    old = "{.status.initContainerStatuses[0].state.terminated.message}"
    assert kubectl_jsonpath(pod("p", [CRASH_LOOP]), old, tmp_path) == ""
    assert kubectl_jsonpath(pod("p", [OTHER_FIRST, CRASH_LOOP]), old, tmp_path) == "done"


def test_helm_test_command_allows_the_startup_budget(render):
    notes = render({"fetcher": {"fetchBudgetSeconds": 1800}}).notes
    # 1800 s to fetch + 600 s of Triton's startup probe, plus 120 s for the test pod itself.
    assert "helm test lease1 --namespace models --timeout 2520s" in notes

"""NOTES.txt tells how to reach Triton and check each leased model, and shows no credential."""

from __future__ import annotations

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


def test_helm_test_command_allows_the_startup_budget(render):
    notes = render({"fetcher": {"fetchBudgetSeconds": 1800}}).notes
    # 1800 s to fetch + 600 s of Triton's startup probe, plus 120 s for the test pod itself.
    assert "helm test lease1 --namespace models --timeout 2520s" in notes

"""``model-fetcher watch`` and ``status`` without Triton: change detection, failures, signals, options."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Iterator

import pytest

from devkit.configmap import ConfigMapDir
from devkit.https_server import serve_files
from devkit.wheel import FetcherInstall
from fetcher.cli.main import build_parser, run
from fetcher.exit_codes import ExitCode
from fetcher.watch.values_watcher import ValuesWatcher, values_digest
from watch_pod import WatchPod, new_pod


def test_a_configmap_update_is_seen_through_the_data_link_swap(tmp_path: Path) -> None:
    configmap = ConfigMapDir(tmp_path / "config", {"values.yaml": "lease: {models: []}\n"})
    path = configmap.path("values.yaml")
    assert path.is_symlink() and os.readlink(path) == "..data/values.yaml"
    watcher = ValuesWatcher([path])
    assert not watcher.changed()
    configmap.update({"values.yaml": "lease: {models: []}\n"})  # a swap with the same content
    assert not watcher.changed()
    configmap.update({"values.yaml": "lease: {models: ['name=a,uri=https://h/a.zip']}\n"})
    assert watcher.changed()
    assert not watcher.changed()  # reported once


def test_digest_depends_on_every_file_and_survives_a_missing_one(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("x: 1\n")
    b.write_text("y: 1\n")
    before = values_digest([a, b])
    b.write_text("y: 2\n")
    assert values_digest([a, b]) != before
    b.unlink()
    assert values_digest([a, b]) not in (before, values_digest([a]))


def test_watch_takes_the_fetch_options_and_its_own() -> None:
    args = build_parser().parse_args(["watch", "--values", "v.yaml", "--dest", "/models/repository"])
    assert args.triton_url == "http://localhost:8000"
    assert args.poll_interval == 5.0 and args.retry_interval == 60.0
    assert args.triton_timeout == 600.0 and args.triton_connect_timeout == 5.0
    assert args.status_file is None
    fetch_options = {a.dest for a in build_parser()._subparsers._group_actions[0].choices["fetch"]._actions}
    watch_options = {a.dest for a in build_parser()._subparsers._group_actions[0].choices["watch"]._actions}
    assert fetch_options <= watch_options


def test_watch_refuses_a_header_name_that_is_not_one(capsys) -> None:
    assert run(["watch", "--dest", "x", "--triton-auth-header", "model control"]) == ExitCode.USAGE
    assert "is not an HTTP header name" in capsys.readouterr().err


@pytest.mark.parametrize("content, reason", [
    (None, "cannot read it"),
    (b"", "is empty"),
    (b"key with spaces", "white space"),
    (b"caf\xc3\xa9-key", "printable ASCII"),
])
def test_watch_refuses_an_unusable_key_file_and_names_it(tmp_path: Path, capsys, content, reason) -> None:
    key_file = tmp_path / "control" / "key"
    if content is not None:
        key_file.parent.mkdir()
        key_file.write_bytes(content)
    code = run(["watch", "--dest", str(tmp_path / "models"), "--termination-log", str(tmp_path / "termination-log"),
                "--status-file", str(tmp_path / "status.json"), "--triton-auth-file", str(key_file)])
    assert code == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert reason in err and str(key_file) in err
    assert reason in (tmp_path / "termination-log").read_text()
    assert "spaces" not in err  # the value is never echoed


def test_watch_refuses_a_poll_interval_of_zero(capsys) -> None:
    assert run(["watch", "--dest", "x", "--poll-interval", "0"]) == ExitCode.USAGE
    assert "must be more than zero" in capsys.readouterr().err


def test_status_without_a_status_file_is_not_ready(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run(["status", "--status-file", str(tmp_path / "none.json")], stdout=out) == ExitCode.MODELS_FAILED
    assert "not ready" in out.getvalue()


def test_status_without_arguments_is_a_usage_error_not_a_probe_result(capsys) -> None:
    out = io.StringIO()
    assert run(["status"], stdout=out) == ExitCode.USAGE
    assert out.getvalue() == ""
    assert "error: give --status-file FILE, or --dest DIR" in capsys.readouterr().err


def test_status_json_without_a_status_file_is_still_json(tmp_path: Path) -> None:
    out = io.StringIO()
    missing = tmp_path / "none.json"
    assert run(["status", "--json", "--status-file", str(missing)], stdout=out) == ExitCode.MODELS_FAILED
    answer = json.loads(out.getvalue())
    assert answer["ready"] is False and answer["healthy"] is False
    assert str(missing) in answer["error"]


def test_a_triton_url_without_a_scheme_is_refused(capsys) -> None:
    assert run(["watch", "--dest", "x", "--triton-url", "localhost:8000"]) == ExitCode.USAGE
    assert "'localhost:8000' has no scheme: write http://localhost:8000" in capsys.readouterr().err


def test_an_unreachable_triton_is_named_with_the_cause() -> None:
    from devkit.ports import free_port
    from fetcher.watch.triton_client import TritonClient, TritonError

    client = TritonClient(f"http://127.0.0.1:{free_port()}", connect_timeout=2.0, load_timeout=2.0)
    with pytest.raises(TritonError, match=r"load of model 'm': cannot reach Triton at .* \(Connection refused\)"):
        client.load("m")


def test_status_finds_the_default_file_beside_the_repository(tmp_path: Path) -> None:
    staging = tmp_path / ".repository.staging"
    staging.mkdir()
    (staging / "status.json").write_text(json.dumps({"ready": True, "phase": "watching", "models": ["a"], "failures": {}}))
    out = io.StringIO()
    assert run(["status", "--dest", str(tmp_path / "repository")], stdout=out) == ExitCode.SUCCESS
    assert out.getvalue().startswith("ready: phase=watching models=1 (a)")


@pytest.fixture()
def idle_pod(tmp_path: Path, fetcher_install: FetcherInstall) -> Iterator[WatchPod]:
    """A watcher whose Triton never runs (nothing listens on its port)."""
    site = tmp_path / "site"
    site.mkdir()
    with serve_files(site) as server:
        pod = new_pod(tmp_path, server, {}, fetcher_install)
        try:
            yield pod
        finally:
            pod.close()


def test_a_failed_initial_sync_exits_and_is_never_ready(idle_pod: WatchPod) -> None:
    idle_pod.lease({"ghost": "missing.zip"})
    idle_pod.start_watch()
    assert idle_pod.process.wait(timeout=60) == ExitCode.MODELS_FAILED
    status = idle_pod.status()
    assert status["ready"] is False and status["phase"] == "failed" and "ghost" in status["failures"]
    assert "model 'ghost'" in (idle_pod.tmp / "termination-log").read_text()
    assert list(idle_pod.repository.iterdir()) == []


def test_invalid_values_at_start_are_bad_input(idle_pod: WatchPod) -> None:
    idle_pod.configmap.update({"values.yaml": "lease: {models: ['name=a']}\n"})
    idle_pod.start_watch()
    assert idle_pod.process.wait(timeout=60) == ExitCode.BAD_INPUT
    assert "values" in idle_pod.status()["failures"]


def test_broken_values_while_watching_are_reported_and_nothing_changes(idle_pod: WatchPod) -> None:
    idle_pod.start_watch()
    idle_pod.wait(lambda: idle_pod.status().get("ready") is True, "the (empty) initial sync")
    idle_pod.configmap.update({"values.yaml": "lease: [not, a, mapping\n"})
    idle_pod.wait(lambda: "values" in idle_pod.status().get("failures", {}), "the values error to be reported")
    assert "not valid YAML" in idle_pod.status()["failures"]["values"]
    assert idle_pod.status()["ready"] is True
    assert "event=values-refused" in idle_pod.log()
    assert idle_pod.stop_watch() == ExitCode.SUCCESS


def test_a_change_while_triton_is_down_changes_nothing_and_is_reported(idle_pod: WatchPod) -> None:
    (idle_pod.tmp / "site" / "a.zip").write_bytes(b"")
    idle_pod.start_watch("--triton-timeout", "1")
    idle_pod.wait(lambda: idle_pod.status().get("ready") is True, "the (empty) initial sync")
    idle_pod.lease({"a": "a.zip"})
    idle_pod.wait(lambda: "triton" in idle_pod.status().get("failures", {}), "Triton's absence to be reported")
    assert "is not live" in idle_pod.status()["failures"]["triton"]
    assert list(idle_pod.repository.iterdir()) == []
    assert idle_pod.stop_watch() == ExitCode.SUCCESS


def test_debug_and_traceback_switch_on_debug_logging(tmp_path: Path) -> None:
    import logging

    from fetcher.logs import get_logger

    for switch in ("--debug", "--traceback"):
        assert build_parser().parse_args(["explain", switch]).debug is True
        assert run(["explain", switch], stdout=io.StringIO()) == ExitCode.SUCCESS
        assert get_logger().level == logging.DEBUG
    run(["explain"], stdout=io.StringIO())
    assert get_logger().level == logging.INFO

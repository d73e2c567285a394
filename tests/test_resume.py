"""Resume across restarts: what a killed run leaves is reused only while the source proves it is
the same; stale work is cleared; a content change at the same URI is noticed (the change check)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from devkit.https_server import serve_files
from devkit.models import model_files, write_large_model, zip_folder, zip_model
from devkit.s3_server import rclone_s3, write_bucket_files
from fetcher.repository.digests import model_files as listed_files, sha256_of
from fetcher.sources.resume_journal import FileRecord, TransferJournal
from tests.support.kill_runs import start_fetch, wait_for_bytes
from tests.support.lease_runs import run_fetch, s3_values

MiB = 1024 * 1024

pytestmark = pytest.mark.usefixtures("no_ambient_aws_credentials")


# --- the journal ---------------------------------------------------------------------------------


def test_the_journal_keeps_progress_only_for_files_whose_record_holds(tmp_path: Path) -> None:
    first = TransferJournal(tmp_path)
    first.begin({"a": FileRecord(100, '"e1"', 10), "b": FileRecord(50, '"e2"', 10), "c": FileRecord(5, None, 5)})
    first.advance("a", 0, 7)
    first.advance("a", 10, 20)
    first.advance("b", 0, 10)
    first.completed("b")
    first.advance("c", 0, 5)
    first.close()
    with open(tmp_path / "journal.log", "a") as log:
        log.write('["a", 20, 2')  # a line torn by a kill
    second = TransferJournal(tmp_path)
    kept = second.begin({"a": FileRecord(100, '"e1"', 10), "b": FileRecord(50, '"e3"', 10),
                         "c": FileRecord(5, None, 5)})
    assert kept == {"a"}  # b changed its ETag; c has no validator, so it never resumes across runs
    assert (second.offset("a", 0), second.offset("a", 10), second.offset("a", 20)) == (7, 20, 20)
    assert not second.is_complete("b") and second.offset("b", 0) == 0
    second.reset("a")
    second.close()
    third = TransferJournal(tmp_path)
    assert third.begin({"a": FileRecord(100, '"e1"', 10)}) == {"a"}
    assert third.offset("a", 0) == 0  # the reset holds across runs too
    third.close()


# --- a killed run, then a changed source -------------------------------------------------------------


def kill_once(args: list[str], server_counter: Any, mark: int, log: Path) -> None:
    process = start_fetch(args, log)
    try:
        assert wait_for_bytes(server_counter, mark, process, timeout=120), log.read_text()[-2000:]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)


def cli_args(tmp_path: Path, values: dict[str, Any]) -> list[str]:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    return ["fetch", "--values", str(values_file), "--dest", str(tmp_path / "models" / "repository"),
            "--termination-log", str(tmp_path / "termination-log"), "--secrets-dir", str(tmp_path / "secrets")]


def tree_digests(folder: Path) -> dict[str, str]:
    return {path: sha256_of(folder / path) for path in listed_files(folder)}


def test_an_https_zip_changed_after_a_kill_is_fetched_whole_never_mixed(tmp_path: Path) -> None:
    old, new = tmp_path / "old" / "m", tmp_path / "new" / "m"
    write_large_model(old, "m", 96 * MiB, seed=1)
    write_large_model(new, "m", 96 * MiB, seed=2)  # same size, other bytes
    site = tmp_path / "site"
    site.mkdir()
    zip_folder(site / "m.zip", old)
    with serve_files(site) as server:
        server.state.send_rate = 64 * MiB
        args = cli_args(tmp_path, {"lease": {"models": [f"name=m,uri={server.url('m.zip')}"]}})
        kill_once(args, server.state.counter, 48 * MiB, tmp_path / "fetch.log")
        zip_folder(site / "m.zip", new)
        server.state.etag = '"v2"'
        sent_before = server.state.counter.total
        final = start_fetch(args, tmp_path / "fetch.log")
        assert final.wait(timeout=300) == 0, (tmp_path / "fetch.log").read_text()[-3000:]
        resent = server.state.counter.total - sent_before
        probes = [r.headers.get("If-Range") for r in server.requests_for("/m.zip") if r.headers.get("Range") == "bytes=0-0"]
    assert tree_digests(tmp_path / "models" / "repository" / "m") == tree_digests(new)
    assert (site / "m.zip").stat().st_size <= resent  # nothing of the old zip was kept
    assert probes and probes[0] == '"v1"'  # the resume asked with If-Range on the recorded validator


def test_an_s3_object_changed_after_a_kill_is_fetched_again_others_are_kept(tmp_path: Path) -> None:
    from devkit.fault_proxy import fault_proxy

    root = tmp_path / "buckets"
    model = write_large_model(root / "models" / "m", "m", 128 * MiB, seed=3)
    with rclone_s3(root) as endpoint, fault_proxy(endpoint.url) as proxy:
        proxy.state.send_rate = 64 * MiB
        values = {**s3_values({"repositoryName": "repo0", "bucketName": "models", "endpoint": proxy.url}),
                  "lease": {"models": ["name=m,uri=model://repo0/m"]}}
        args = cli_args(tmp_path, values)
        kill_once(args, proxy.state.counter, 64 * MiB, tmp_path / "fetch.log")
        changed = model / "1" / "weights-b.bin"  # 32 MiB, fetched beside weights-a's parts
        changed.write_bytes(os.urandom(changed.stat().st_size))
        sent_before = proxy.state.counter.total
        final = start_fetch(args, tmp_path / "fetch.log")
        assert final.wait(timeout=300) == 0, (tmp_path / "fetch.log").read_text()[-3000:]
        resent = proxy.state.counter.total - sent_before
    assert tree_digests(tmp_path / "models" / "repository" / "m") == tree_digests(model)
    assert resent < 128 * MiB  # weights-a's written parts were kept, weights-b was fetched whole again


def test_stale_work_folders_are_cleared_and_current_ones_kept(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    zip_model(site / "m.zip", model_files("m"))
    staging = tmp_path / ".repository.staging"
    for name in ("resume-gone-0123456789abcdef", "work-m-x1"):
        (staging / name / "journal").mkdir(parents=True)
    with serve_files(site) as server:
        run = run_fetch({}, [f"name=m,uri={server.url('m.zip')}"], tmp_path)
    assert run.result("m").ok
    assert sorted(p.name for p in staging.iterdir()) == ["manifest.json"]


# --- the change check: the content changed at the same URI -----------------------------------------


def serve_changing_zip(tmp_path: Path) -> tuple[Path, Any]:
    site = tmp_path / "site"
    site.mkdir()
    zip_model(site / "m.zip", model_files("m", addend=1.0))
    return site, serve_files(site)


def installed_model_py(tmp_path: Path) -> str:
    return (tmp_path / "repository" / "m" / "1" / "model.py").read_text()


def test_an_https_model_changed_at_the_same_url_is_fetched_again(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    site, serving = serve_changing_zip(tmp_path)
    with serving as server:
        spec = f"name=m,uri={server.url('m.zip')}"
        assert run_fetch({}, [spec], tmp_path).result("m").ok
        zip_model(site / "m.zip", model_files("m", addend=2.0))
        server.state.etag = '"v2"'
        with caplog.at_level("INFO", logger="model-fetcher"):
            assert run_fetch({}, [spec], tmp_path).result("m").ok
        assert "+ 2.0" in installed_model_py(tmp_path)
        assert "model=m event=source-changed" in caplog.text
        # Known immutable: no question is asked, the installed model stays.
        zip_model(site / "m.zip", model_files("m", addend=3.0))
        server.state.etag = '"v3"'
        requests_before = len(server.requests_for("/m.zip"))
        assert run_fetch({}, [spec], tmp_path, change_check=False).result("m").ok
        assert len(server.requests_for("/m.zip")) == requests_before
    assert "+ 2.0" in installed_model_py(tmp_path)


def test_an_unreachable_source_keeps_the_installed_model(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    site, serving = serve_changing_zip(tmp_path)
    with serving as server:
        spec = f"name=m,uri={server.url('m.zip')}"
        assert run_fetch({}, [spec], tmp_path).result("m").ok
    with caplog.at_level("INFO", logger="model-fetcher"):
        assert run_fetch({}, [spec], tmp_path, read_timeout=2.0).result("m").ok  # the server is gone
    assert "model=m event=change-check-failed" in caplog.text and "+ 1.0" in installed_model_py(tmp_path)


def test_an_s3_model_changed_at_the_same_prefix_is_fetched_again(tmp_path: Path) -> None:
    root = tmp_path / "buckets"
    write_bucket_files(root, "models", {f"m/{k}": v for k, v in model_files("m", addend=1.0).items()})
    with rclone_s3(root) as endpoint:
        values = s3_values({"repositoryName": "repo0", "bucketName": "models", "endpoint": endpoint.url})
        assert run_fetch(values, ["name=m,uri=model://repo0/m"], tmp_path).result("m").ok
        write_bucket_files(root, "models", {f"m/{k}": v for k, v in model_files("m", addend=7.0).items()})
        assert run_fetch(values, ["name=m,uri=model://repo0/m"], tmp_path).result("m").ok
    assert "+ 7.0" in installed_model_py(tmp_path)
    manifest = json.loads((tmp_path / ".repository.staging" / "manifest.json").read_text())
    assert set(manifest["m"]["validators"]["objects"]) == {"m/config.pbtxt", "m/1/model.py"}

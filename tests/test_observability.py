"""Seeing a fetch: progress lines of a slow transfer, JSON logs, the metrics file, the termination message."""

from __future__ import annotations

import json
import os
import re
import statistics
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from devkit.https_server import Fault
from devkit.models import model_files, zip_model
from fetcher.progress import failure_reason
from fetcher.errors import DownloadError, SecretError
from fetcher.termination import MAX_BYTES, fit_message, order_failures
from tests.test_https_fetch import fetch_args, values_file

RATE = 256 * 1024  # bytes per second the slow server sends
INTERVAL = 0.5
PROGRESS = re.compile(
    r"model=slow event=progress source=https phase=(?P<phase>\w+) bytes=(?P<bytes>\d+) total=(?P<total>\d+) "
    r"percent=(?P<percent>[\d.]+) rate=[\d.]+MiB/s bytes_per_second=(?P<bps>\d+) eta_seconds=(?P<eta>\d+|-) "
    r"elapsed_seconds=[\d.]+$"
)


def _metrics(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_a_slow_transfer_logs_progress_at_each_interval_with_its_rate(tmp_path: Path, site: Path, http_server,
                                                                      cli) -> None:
    zip_model(site / "slow.zip", {**model_files("slow"), "1/weights.bin": os.urandom(3 * RATE)})
    size = (site / "slow.zip").stat().st_size
    http_server.state.send_rate = RATE  # about 3 s for the whole zip
    values = values_file(tmp_path, [], [f"name=slow,uri={http_server.url('slow.zip')}"])
    result = cli(*fetch_args(tmp_path, values, "--progress-interval", str(INTERVAL)))
    assert result.status == 0, result.stderr

    lines = [m for m in (PROGRESS.search(line) for line in result.stderr.splitlines()) if m]
    downloading = [m for m in lines if m["phase"] == "download"]
    # At least one line per interval of a transfer that lasts size / RATE seconds (the first
    # interval ends INTERVAL after the start).
    assert len(downloading) >= int(size / RATE / INTERVAL) - 1, result.stderr
    done = [int(m["bytes"]) for m in downloading]
    assert done == sorted(done) and done[0] > 0 and done[-1] <= size
    assert all(int(m["total"]) == size for m in lines)
    for m in downloading:
        assert abs(float(m["percent"]) - 100.0 * int(m["bytes"]) / size) < 0.1
    # Each rate is measured over its own interval; the windows between the first (connection set
    # up) and the last (the transfer may end within it) see the server's pace.
    rates = [int(m["bps"]) for m in downloading[1:] if int(m["bytes"]) < size][:-1]
    assert rates, result.stderr
    assert all(abs(rate - RATE) < 0.35 * RATE for rate in rates), rates
    assert abs(statistics.median(rates) - RATE) < 0.15 * RATE, rates
    for m in downloading:
        if m["eta"] != "-":
            expected = (size - int(m["bytes"])) / int(m["bps"])
            assert abs(int(m["eta"]) - expected) <= 1, m.group(0)
    # Once the model is installed, no more lines about it.
    last = result.stderr.rindex("event=progress")
    assert last < result.stderr.index("model=slow event=installed")


def test_no_progress_lines_with_interval_0(tmp_path: Path, site: Path, http_server, cli) -> None:
    zip_model(site / "slow.zip", {**model_files("slow"), "1/weights.bin": os.urandom(RATE // 2)})
    http_server.state.send_rate = RATE
    values = values_file(tmp_path, [], [f"name=slow,uri={http_server.url('slow.zip')}"])
    result = cli(*fetch_args(tmp_path, values, "--progress-interval", "0"))
    assert result.status == 0, result.stderr
    assert "event=installed" in result.stderr and "event=progress" not in result.stderr


def test_json_logs_parse_line_by_line_and_carry_no_query_string(tmp_path: Path, site: Path, http_server,
                                                                cli) -> None:
    zip_model(site / "slow.zip", {**model_files("slow"), "1/weights.bin": os.urandom(RATE // 2)})
    http_server.state.send_rate = RATE
    values = values_file(tmp_path, [], [
        f"name=slow,uri={http_server.url('slow.zip')}?X-Amz-Signature=SIGNATURE-4d2a",
        f"name=missing,uri={http_server.url('missing.zip')}?token=TOKEN-99c1",
    ])
    result = cli(*fetch_args(tmp_path, values, "--log-format", "json", "--progress-interval", "0.3"))
    assert result.status == 1
    assert "SIGNATURE-4d2a" not in result.stderr and "TOKEN-99c1" not in result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]  # every line is JSON
    assert all({"time", "level"} <= set(r) and r["time"].endswith("Z") for r in records)
    by_event = {(r.get("model"), r.get("event")): r for r in records}
    start = by_event[("slow", "start")]
    assert start["source"] == "https" and start["location"].endswith("/slow.zip?X-Amz-Signature=***") and start["secret"] == "none"
    progress = [r for r in records if r.get("event") == "progress"]
    assert progress and all(isinstance(r["bytes"], int) and r["total"] == (site / "slow.zip").stat().st_size
                            for r in progress)
    installed = by_event[("slow", "installed")]
    assert installed["bytes"] == (site / "slow.zip").stat().st_size and isinstance(installed["seconds"], float)
    failed = by_event[("missing", "failed")]
    assert failed["level"] == "ERROR" and "HTTP 404" in failed["error"] and "?token=***" in failed["error"]
    done = records[-1]
    assert done["event"] == "done" and done["failed"] == 1 and done["installed"] == 1
    assert done["downloaded_bytes"] == installed["bytes"] and done["reused_bytes"] == 0


def test_init_mode_writes_the_metrics_file_and_ends_with_its_figures(tmp_path: Path, site: Path, http_server,
                                                                     cli) -> None:
    zip_model(site / "big.zip", {**model_files("big"), "1/weights.bin": os.urandom(400_000)})
    size = (site / "big.zip").stat().st_size
    http_server.state.faults["/big.zip"] = Fault(times=1, drop_after=150_000)  # broken off once, then resumed
    values = values_file(tmp_path, [], [f"name=big,uri={http_server.url('big.zip')}",
                                        f"name=gone,uri={http_server.url('gone.zip')}"])
    result = cli(*fetch_args(tmp_path, values))
    assert result.status == 1
    prom = tmp_path / "models" / ".repository.staging" / "metrics.prom"
    samples = _metrics(prom)
    assert samples[("model_fetcher_downloaded_bytes_total", (("model", "big"), ("source", "https")))] == size
    resumed = samples[("model_fetcher_reused_bytes_total", (("kind", "resume"),))]
    assert 0 < resumed <= 150_000
    assert samples[("model_fetcher_models_installed_total", (("source", "https"),))] == 1
    assert samples[("model_fetcher_failures_total", (("reason", "download"), ("source", "https")))] == 1
    assert samples[("model_fetcher_fetch_duration_seconds_count", (("outcome", "installed"), ("source", "https")))] == 1
    assert samples[("model_fetcher_models", ())] == 1
    assert samples[("model_fetcher_last_successful_sync_timestamp_seconds", ())] == 0  # a model failed
    last = [line for line in result.stderr.splitlines() if re.match(r"\d{4}-\d\d-\d\dT", line)][-1]
    assert "event=done" in last and f"failed=1 bytes={size}" in last and f"downloaded_bytes={size} reused_bytes={int(resumed)}" in last
    assert f"metrics_file={prom}" in last

    # A restart keeps the installed model: its bytes count as reused, nothing is downloaded.
    (site / "gone.zip").write_bytes((site / "big.zip").read_bytes())
    result = cli(*fetch_args(tmp_path, values))
    assert result.status == 0, result.stderr
    samples = _metrics(prom)
    installed_bytes = sum(p.stat().st_size for p in (tmp_path / "models" / "repository" / "big").rglob("*")
                          if p.is_file())
    assert samples[("model_fetcher_reused_bytes_total", (("kind", "restart"),))] == installed_bytes
    assert ("model_fetcher_downloaded_bytes_total", (("model", "big"), ("source", "https"))) not in samples
    assert samples[("model_fetcher_models", ())] == 2
    assert samples[("model_fetcher_last_successful_sync_timestamp_seconds", ())] > 0


def test_fifty_failing_models_fit_the_termination_message(tmp_path: Path, http_server, cli) -> None:
    names = [f"model_{i:02d}" for i in range(50)]
    values = values_file(tmp_path, [], [f"name={n},uri={http_server.url(f'lease/{n}/missing-archive.zip')}"
                                        for n in names])
    result = cli(*fetch_args(tmp_path, values, "--concurrency", "8"))
    assert result.status == 1
    assert all(f"model '{n}'" in result.stderr for n in names)  # the log has every one
    message = (tmp_path / "termination-log").read_bytes()
    assert len(message) <= MAX_BYTES
    text = message.decode("utf-8")
    lines = text.splitlines()
    named = [n for n in names if f"model '{n}'" in text]
    assert named == names[: len(named)] and len(named) >= 10  # the first failures, in the lease's order
    assert lines[0].startswith("model 'model_00': ") and "HTTP 404" in lines[0]
    assert lines[-1] == f"... and {50 - len(named)} more failed (the container's log has every reason)"


def test_the_termination_message_puts_one_failure_of_each_kind_first() -> None:
    failures = [(f"model 'm{i:02d}': " + "unreachable — ünïcödé " * 8, "download") for i in range(60)]
    failures.insert(41, ("model 'needs-token': secret 'ngc-model-pull' is not mounted", "secret"))
    ordered = order_failures(failures)
    assert ordered[0].startswith("model 'needs-token'") and ordered[1].startswith("model 'm00'")
    message = fit_message(ordered)
    assert len(message) <= MAX_BYTES
    text = message.decode("utf-8")  # cut on whole characters and whole lines
    assert "needs-token" in text and text.endswith("more failed (the container's log has every reason)")
    assert fit_message(["x" * 5000]).decode().endswith("...") and len(fit_message(["é" * 5000])) <= 1024


def test_failure_reasons_are_short_labels() -> None:
    assert failure_reason(SecretError("s")) == "secret"
    assert failure_reason(DownloadError("d")) == "download"
    assert failure_reason(KeyError("k")) == "internal"


def test_bad_observability_options_are_usage_errors(tmp_path: Path, cli) -> None:
    base = ["--dest", tmp_path / "models", "--termination-log", tmp_path / "t"]
    assert cli("fetch", *base, "--progress-interval", "-1").status == 2
    assert cli("fetch", *base, "--log-format", "xml").status == 2
    result = cli("watch", *base, "--metrics-port", "70000")
    assert result.status == 2 and "is not a port" in result.stderr


def test_a_metrics_port_in_use_is_named(tmp_path: Path, cli) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("watch", "--dest", tmp_path / "models", "--termination-log", tmp_path / "t",
                     "--metrics-port", str(port), "--metrics-address", "127.0.0.1")
    assert result.status == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr and "--metrics-port" in result.stderr


def test_log_fields_keep_free_text_whole_and_names_as_text() -> None:
    from fetcher.logs import parse_fields

    assert parse_fields("model=007 event=start source=s3 location=s3://b/p (endpoint https://e) secret=none") == {
        "model": "007", "event": "start", "source": "s3", "location": "s3://b/p (endpoint https://e)",
        "secret": "none"}
    assert parse_fields("model=m event=failed seconds=1.50 error=spec 'name=x, uri=y' is wrong") == {
        "model": "m", "event": "failed", "seconds": 1.5, "error": "spec 'name=x, uri=y' is wrong"}
    assert parse_fields("event=synced applied=- unchanged=3") == {"event": "synced", "applied": None, "unchanged": 3}


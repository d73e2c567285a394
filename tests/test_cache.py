"""The node's model cache: several fetcher processes on one cache folder, eviction, damage, tenants, Triton."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from devkit.https_server import RunningServer, serve_files
from devkit.models import model_files, zip_model
from devkit.secrets import write_secret
from devkit.triton import run_triton, wait_until
from tests.support.locks import is_locked

TOKEN = "Bearer cache-tenant-SECRET-7731"
PADDING = 100 * 1024  # bytes of incompressible padding per model in the eviction test


@pytest.fixture()
def models_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "private").mkdir(parents=True)
    for index, name in enumerate(("m1", "m2", "m3", "m4")):
        files = model_files(name, addend=float(index + 1))
        files["1/weights.bin"] = os.urandom(PADDING)
        zip_model(site / f"{name}.zip", files)
    zip_model(site / "private" / "secret_model.zip", model_files("secret_model", addend=5.0))
    return site


@pytest.fixture()
def server(models_site: Path, server_tls) -> Iterator[RunningServer]:
    with serve_files(models_site, tls=server_tls, required_auth={"/private/": TOKEN}) as running:
        yield running


def whole_gets(server: RunningServer, path: str) -> int:
    """Downloads of the file (a probe asks for a one-byte range)."""
    return sum(1 for r in server.requests_for(path) if "Range" not in r.headers)


class Pod:
    """One pod's fetcher on this node: its own repository and secrets, the node's cache folder."""

    def __init__(self, tmp_path: Path, name: str, cache: Path, *, secret: str | None = None,
                 max_size: str = "1Mi", grace: str = "0") -> None:
        self.name = name
        self.home = tmp_path / name
        self.home.mkdir()
        self.root = self.home / "models" / "repository"
        self.log = self.home / "fetcher.log"
        self.secrets = self.home / "secrets"
        self.secrets.mkdir()
        self.https: list[dict[str, str]] = []
        if secret is not None:
            write_secret(self.secrets, "models-token", secret)
            self.https = [{"secretName": "models-token", "targetUri": "127.0.0.1/private"}]
        self.cache = cache
        self.max_size = max_size
        self.grace = grace

    def command(self, models: list[str], ca_file: Path) -> list[str]:
        values = self.home / "values.yaml"
        values.write_text(yaml.safe_dump({"server": {"modelRepositories": {"https": self.https}},
                                          "lease": {"models": models}}))
        return [sys.executable, "-m", "fetcher", "fetch", "--values", str(values), "--dest", str(self.root),
                "--secrets-dir", str(self.secrets), "--termination-log", str(self.home / "termination-log"),
                "--ca-bundle", str(ca_file), "--cache-dir", str(self.cache), "--cache-max-size", self.max_size,
                "--cache-lease-grace", self.grace]

    def start(self, models: list[str], ca_file: Path) -> subprocess.Popen[bytes]:
        env = {**os.environ, "POD_UID": self.name}
        with open(self.log, "ab") as log:
            return subprocess.Popen(self.command(models, ca_file), stdout=log, stderr=subprocess.STDOUT, env=env)

    def fetch(self, models: list[str], ca_file: Path) -> int:
        process = self.start(models, ca_file)
        return process.wait(timeout=120)

    def metrics(self) -> str:
        """The run's Prometheus metrics, as the fetcher writes them beside the repository."""
        return (self.home / "models" / ".repository.staging" / "metrics.prom").read_text()

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def hold_lease(self) -> int:
        """What the chart's Triton container does while it runs: a shared lock on the pod's lease."""
        fd = os.open(self.cache / "pods" / f"{self.name}.lock", os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_SH)
        return fd


def entry_of(link: Path) -> Path:
    assert link.is_symlink(), f"{link} is not a link into the cache"
    return Path(os.path.realpath(link))


def test_pods_of_a_node_fetching_one_model_at_once_download_it_once(tmp_path: Path, server: RunningServer,
                                                                     ca_file: Path) -> None:
    cache = tmp_path / "cache"
    server.state.hold_whole = threading.Event()
    model = [f"name=m1,uri={server.url('m1.zip')}"]
    first = Pod(tmp_path, "pod-a", cache)
    filling = first.start(model, ca_file)
    try:
        wait_until(lambda: whole_gets(server, "/m1.zip") == 1, timeout=60, what="the first pod's download")
        others = [Pod(tmp_path, f"pod-{n}", cache) for n in ("b", "c", "d")]
        waiting = [pod.start(model, ca_file) for pod in others]
        wait_until(lambda: all("event=cache-wait" in pod.text() for pod in others), timeout=60,
                   what="the other pods to wait for the entry")
    finally:
        server.state.hold_whole.set()
    assert filling.wait(timeout=120) == 0, first.text()
    assert [process.wait(timeout=120) for process in waiting] == [0, 0, 0], [pod.text() for pod in others]

    assert whole_gets(server, "/m1.zip") == 1  # the source saw the model's bytes once
    assert "event=cache-miss" in first.text() and "event=cache-stored" in first.text()
    entries = {entry_of(pod.root / "m1") for pod in (first, *others)}
    assert len(entries) == 1 and entries.pop().parent.parent == (cache / "entries").resolve()
    for pod in others:
        assert "event=cache-hit" in pod.text() and "bytes_saved=" in pod.text()
        assert (pod.root / "m1" / "1" / "weights.bin").stat().st_size == PADDING
        metrics = pod.metrics()
        assert 'model_fetcher_cache_events_total{event="wait"} 1.0' in metrics
        assert 'model_fetcher_cache_events_total{event="hit"} 1.0' in metrics
        assert 'model_fetcher_reused_bytes_total{kind="cache"}' in metrics
    assert 'model_fetcher_cache_events_total{event="stored"} 1.0' in first.metrics()
    # A pod started later reuses the entry at once.
    late = Pod(tmp_path, "pod-e", cache)
    assert late.fetch(model, ca_file) == 0, late.text()
    assert "event=cache-hit" in late.text() and "event=cache-wait" not in late.text()
    assert whole_gets(server, "/m1.zip") == 1


def test_eviction_keeps_the_limit_and_the_entries_in_use(tmp_path: Path, server: RunningServer, ca_file: Path) -> None:
    cache = tmp_path / "cache"
    limit = 2 * PADDING + PADDING // 2  # two models fit, three do not
    pods = {name: Pod(tmp_path, name, cache, max_size=str(limit)) for name in ("pod-a", "pod-b", "pod-c", "pod-d")}
    assert pods["pod-a"].fetch([f"name=m1,uri={server.url('m1.zip')}"], ca_file) == 0
    running = pods["pod-a"].hold_lease()  # pod-a's Triton runs on; pod-b's ends with its fetcher
    try:
        assert pods["pod-b"].fetch([f"name=m2,uri={server.url('m2.zip')}"], ca_file) == 0
        m2_entry = entry_of(pods["pod-b"].root / "m2")
        assert pods["pod-c"].fetch([f"name=m3,uri={server.url('m3.zip')}"], ca_file) == 0, pods["pod-c"].text()
        assert "event=cache-evict" in pods["pod-c"].text()
        assert 'model_fetcher_cache_events_total{event="evict"} 1.0' in pods["pod-c"].metrics()
        assert "model_fetcher_cache_evicted_bytes_total" in pods["pod-c"].metrics()
        assert not m2_entry.exists()  # least recently used and in no running pod's lease
        assert (pods["pod-a"].root / "m1" / "config.pbtxt").is_file()  # in use: kept
        assert cache_bytes(cache) <= limit

        third_running = pods["pod-c"].hold_lease()
        try:  # both entries in use: m4 cannot fit, so pod-d installs its own copy
            assert pods["pod-d"].fetch([f"name=m4,uri={server.url('m4.zip')}"], ca_file) == 0
        finally:
            os.close(third_running)
        assert "event=cache-full" in pods["pod-d"].text()
        own = pods["pod-d"].root / "m4"
        assert own.is_dir() and not own.is_symlink()
        assert cache_bytes(cache) <= limit
        assert (pods["pod-a"].root / "m1" / "config.pbtxt").is_file() and (pods["pod-c"].root / "m3").exists()
    finally:
        os.close(running)


def cache_bytes(cache: Path) -> int:
    return sum(f.stat().st_size for f in (cache / "entries").rglob("*") if f.is_file())


@pytest.mark.parametrize("damage", ["same-size", "truncated", "missing", "added"])
def test_a_damaged_entry_is_fetched_again_never_linked(tmp_path: Path, server: RunningServer, ca_file: Path,
                                                       damage: str) -> None:
    cache = tmp_path / "cache"
    model = [f"name=m1,uri={server.url('m1.zip')}"]
    first = Pod(tmp_path, "pod-a", cache)
    assert first.fetch(model, ca_file) == 0
    weights = entry_of(first.root / "m1") / "1" / "weights.bin"
    good = weights.read_bytes()
    os.chmod(weights.parent, 0o755)
    os.chmod(weights, 0o644)
    if damage == "same-size":
        weights.write_bytes(bytes(len(good)))
    elif damage == "truncated":
        weights.write_bytes(good[: len(good) // 2])
    elif damage == "missing":
        weights.unlink()
    else:
        (weights.parent / "extra.bin").write_bytes(b"x")
    second = Pod(tmp_path, "pod-b", cache)
    assert second.fetch(model, ca_file) == 0, second.text()
    assert "event=cache-corrupt" in second.text() and "event=cache-hit" not in second.text()
    assert whole_gets(server, "/m1.zip") == 2
    assert (second.root / "m1" / "1" / "weights.bin").read_bytes() == good
    assert not (second.root / "m1" / "1" / "extra.bin").exists()


def test_a_model_that_needed_a_secret_goes_only_to_pods_that_can_reach_it(tmp_path: Path, server: RunningServer,
                                                                          ca_file: Path) -> None:
    cache = tmp_path / "cache"
    model = [f"name=secret_model,uri={server.url('private/secret_model.zip')}"]
    owner = Pod(tmp_path, "pod-a", cache, secret=TOKEN)
    assert owner.fetch(model, ca_file) == 0, owner.text()
    assert whole_gets(server, "/private/secret_model.zip") == 1

    without = Pod(tmp_path, "pod-b", cache)  # no https entry, no secret
    wrong = Pod(tmp_path, "pod-c", cache, secret="Bearer not-the-token")
    for pod in (without, wrong):
        assert pod.fetch(model, ca_file) == 1
        assert not (pod.root / "secret_model").exists()
        assert "HTTP 401" in pod.text() and "event=cache-hit" not in pod.text()
        assert TOKEN not in pod.text()
    assert whole_gets(server, "/private/secret_model.zip") == 1  # nothing was downloaded for them either

    other_holder = Pod(tmp_path, "pod-d", cache, secret=TOKEN)  # its own copy of the secret: it could fetch it
    assert other_holder.fetch(model, ca_file) == 0
    assert "event=cache-hit" in other_holder.text()
    assert whole_gets(server, "/private/secret_model.zip") == 1


def test_a_changed_file_at_the_same_url_is_a_new_entry(tmp_path: Path, server: RunningServer, ca_file: Path) -> None:
    cache = tmp_path / "cache"
    model = [f"name=m1,uri={server.url('m1.zip')}"]
    assert Pod(tmp_path, "pod-a", cache).fetch(model, ca_file) == 0
    server.state.etag = '"v2"'
    later = Pod(tmp_path, "pod-b", cache)
    assert later.fetch(model, ca_file) == 0
    assert "event=cache-miss" in later.text()
    assert whole_gets(server, "/m1.zip") == 2


def test_triton_serves_models_linked_from_the_cache(tmp_path: Path, server: RunningServer, ca_file: Path) -> None:
    cache = tmp_path / "cache"
    models = [f"name=m1,uri={server.url('m1.zip')}", f"name=renamed,uri={server.url('m2.zip')}"]
    first, second = Pod(tmp_path, "pod-a", cache), Pod(tmp_path, "pod-b", cache)
    assert first.fetch(models, ca_file) == 0
    assert second.fetch(models, ca_file) == 0
    assert whole_gets(server, "/m1.zip") == 1 and whole_gets(server, "/m2.zip") == 1
    assert entry_of(second.root / "m1").is_dir()
    renamed = second.root / "renamed"  # the lease renames it: a copy whose config.pbtxt agrees
    assert not renamed.is_symlink() and 'name: "renamed"' in (renamed / "config.pbtxt").read_text()
    with run_triton(second.root, tmp_path / "triton.log") as triton:
        assert triton.model_ready("m1") and triton.model_ready("renamed")
        assert triton.infer("m1", [1.0, 2.0, 3.0, 4.0]) == [2.0, 3.0, 4.0, 5.0]
        assert triton.infer("renamed", [1.0, 2.0, 3.0, 4.0]) == [3.0, 4.0, 5.0, 6.0]
    assert "event=cache-hit" in second.text()


def test_cache_options_come_in_pairs(tmp_path: Path, cli) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("lease:\n  models: []\n")
    result = cli("fetch", "--values", values, "--dest", tmp_path / "repository", "--cache-dir", tmp_path / "c",
                 "--termination-log", tmp_path / "termination-log")
    assert result.status == 2 and "--cache-dir is given without --cache-max-size" in result.stderr
    result = cli("fetch", "--values", values, "--dest", tmp_path / "repository", "--cache-dir", tmp_path / "c",
                 "--cache-max-size", "2Gi", "--termination-log", tmp_path / "termination-log")
    assert result.status == 0, result.stderr


@pytest.mark.parametrize(("text", "expected"), [("1048576", 1024**2), ("1Mi", 1024**2), ("20Gi", 20 * 1024**3),
                                                ("1Ti", 1024**4), ("512Ki", 512 * 1024), ("2G", 2 * 1024**3)])
def test_cache_max_size_takes_bytes_or_binary_suffixes(text: str, expected: int) -> None:
    from fetcher.cli.main import build_parser

    args = build_parser().parse_args(["fetch", "--values", "v", "--dest", "d", "--cache-dir", "c",
                                      "--cache-max-size", text])
    assert args.cache_max_size == expected


@pytest.mark.usefixtures("no_ambient_aws_credentials")
def test_an_s3_model_goes_only_to_pods_whose_keys_can_list_it(tmp_path: Path) -> None:
    from devkit.s3_server import rclone_s3, write_bucket_files
    from fetcher.cache.store import CacheSettings, ModelCache
    from tests.support.lease_runs import run_fetch, s3_values, write_secret as write_key

    write_bucket_files(tmp_path / "s3", "models", {f"s3_model/{k}": v for k, v in model_files("s3_model").items()})
    cache = tmp_path / "cache"
    with rclone_s3(tmp_path / "s3", keys=("cacheaccess", "cachesecret0123456789")) as endpoint:
        values = s3_values({"repositoryName": "repo0", "bucketName": "models", "endpoint": endpoint.url,
                            "accessKey": "s3-access", "secretKey": "s3-secret"})
        model = ["name=s3_model,uri=model://repo0/s3_model"]
        runs = {}
        for pod, secret_key in (("pod-a", "cachesecret0123456789"), ("pod-b", "not-the-secret-key-000"),
                                ("pod-c", "cachesecret0123456789")):
            home = tmp_path / pod
            write_key(home / "secrets", "s3-access", "cacheaccess")
            write_key(home / "secrets", "s3-secret", secret_key)
            handle = ModelCache(CacheSettings(root=cache, max_bytes=1024**2, pod_id=pod, lease_grace=0))
            try:
                runs[pod] = run_fetch(values, model, home, cache=handle)
            finally:
                handle.close()
    owner, denied, other = (runs[p].result("s3_model") for p in ("pod-a", "pod-b", "pod-c"))
    assert owner.ok and owner.bytes_transferred > 0
    assert not denied.ok and "SignatureDoesNotMatch" in (denied.error or "")
    assert not (runs["pod-b"].dest / "s3_model").exists()
    assert other.ok and other.bytes_transferred == 0  # taken from the cache, after its own listing succeeded
    assert entry_of(runs["pod-c"].dest / "s3_model") == entry_of(runs["pod-a"].dest / "s3_model")


def test_the_cache_bench_runs(tmp_path: Path) -> None:
    """A tiny run of `python -m bench.cache` (not a performance check)."""
    done = subprocess.run([sys.executable, "-m", "bench.cache", "--size", "1Mi", "--runs", "1",
                           "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("| ")}
    assert {"download", "miss", "hit", "symbolic link"} <= set(rows)
    assert not any(tmp_path.iterdir()), "the bench left its temporary folder behind"


def test_a_sidecar_holds_its_lease_and_keeps_it_to_the_models_it_serves(tmp_path: Path, models_site: Path) -> None:
    """``watch`` with the cache: its lock keeps its entries from eviction; a removed model leaves its lease."""
    import json

    from devkit.wheel import checkout_install
    from watch_pod import new_pod

    cache = tmp_path / "cache"
    with serve_files(models_site) as plain:
        pod = new_pod(tmp_path / "sidecar", plain, {"m1": "m1.zip", "m2": "m2.zip"}, checkout_install())
        try:
            pod.start_watch("--cache-dir", str(cache), "--cache-max-size", "1Mi")
            pod.wait(lambda: pod.status().get("ready") is True, "the initial sync")
            (lease,) = (cache / "pods").glob("*.json")
            assert len(json.loads(lease.read_text())) == 2
            assert is_locked(lease.with_suffix(".lock"))  # held by the running sidecar
            triton = pod.start_triton()
            assert triton.infer("m1", [1, 2, 3, 4]) == [2, 3, 4, 5]
            kept = entry_of(pod.repository / "m1")
            pod.lease({"m1": "m1.zip"})
            pod.wait(lambda: not (pod.repository / "m2").exists(), "m2 to be removed")
            pod.wait(lambda: json.loads(lease.read_text()) == [kept.parent.name], "the lease to drop m2's entry")
            assert pod.stop_watch() == 0
            assert not is_locked(lease.with_suffix(".lock"))
        finally:
            pod.close()


def test_fills_killed_midway_are_cleared(tmp_path: Path, server: RunningServer, ca_file: Path) -> None:
    cache = tmp_path / "cache"
    leftover = cache / "staging" / f"{'0' * 40}-killed"
    leftover.mkdir(parents=True)
    (leftover / "partial.bin").write_bytes(b"half a model")
    pod = Pod(tmp_path, "pod-a", cache)
    assert pod.fetch([f"name=m1,uri={server.url('m1.zip')}"], ca_file) == 0
    assert not leftover.exists()
    assert list((cache / "staging").iterdir()) == []


def test_a_model_larger_than_the_cache_is_fetched_into_the_pod_alone(tmp_path: Path, server: RunningServer,
                                                                      ca_file: Path) -> None:
    cache = tmp_path / "cache"
    pod = Pod(tmp_path, "pod-a", cache, max_size=str(PADDING // 2))
    assert pod.fetch([f"name=m1,uri={server.url('m1.zip')}"], ca_file) == 0
    assert "event=cache-full" in pod.text() and "larger than the cache" in pod.text()
    assert (pod.root / "m1").is_dir() and not (pod.root / "m1").is_symlink()
    assert list((cache / "entries").iterdir()) == [] and list((cache / "staging").iterdir()) == []

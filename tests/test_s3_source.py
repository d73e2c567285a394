"""S3 repositories against real S3 servers on loopback (rclone serve s3 and moto)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from devkit.models import model_files
from devkit.ports import free_port
from fetcher.errors import DownloadError, ModelLayoutError, ResolutionError
from fetcher.lease.values import S3Repository
from fetcher.metrics import FetchMetrics
from fetcher.plan import plan_lease
from fetcher.model_folder import configured_name
from fetcher.progress import FetchObserver
from fetcher.repository.install import Repository, default_staging_dir
from fetcher.runner import fetch_all
from fetcher.sources import s3 as s3_source
from fetcher.sources.parallel_download import TransferSettings, split_parts
from fetcher.sources.s3 import S3Source
from tests.support.aws_env import isolated_aws_environment
from tests.support.lease_runs import lease, options_for, run_fetch, s3_values, tree, write_secret
from devkit.s3_server import (
    TEST_ACCESS_KEY,
    TEST_SECRET_KEY,
    S3Endpoint,
    moto_s3,
    put_objects,
    rclone_s3,
    write_bucket_files,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
pytestmark = pytest.mark.usefixtures("no_ambient_aws_credentials")


@pytest.fixture(scope="module")
def public_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("public-s3")


@pytest.fixture(scope="module")
def public_s3(public_root: Path) -> Iterator[S3Endpoint]:
    """A bucket server that answers anonymous requests (a public bucket)."""
    with rclone_s3(public_root) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def private_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("private-s3")


@pytest.fixture(scope="module")
def private_s3(private_root: Path) -> Iterator[S3Endpoint]:
    """A bucket server that checks SigV4 signatures against one key pair."""
    with rclone_s3(private_root, keys=(TEST_ACCESS_KEY, TEST_SECRET_KEY)) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def moto() -> Iterator[S3Endpoint]:
    with moto_s3() as endpoint:
        yield endpoint


def repo(endpoint: S3Endpoint | str | None, bucket: str, *, name: str = "repo0", **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"repositoryName": name, "bucketName": bucket}
    if endpoint is not None:
        entry["endpoint"] = endpoint if isinstance(endpoint, str) else endpoint.url
    entry.update(extra)
    return entry


def moto_repo(moto: S3Endpoint, bucket: str, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """moto accepts any key pair, but reads objects of a private bucket only with a signature."""
    return repo(moto, bucket, **keyed(tmp_path, "moto-key-id-00000001", "moto-secret"), **extra)


def keyed(tmp_path: Path, access: str = TEST_ACCESS_KEY, secret: str = TEST_SECRET_KEY) -> dict[str, str]:
    write_secret(tmp_path / "secrets", "access-key-secret-name", access)
    write_secret(tmp_path / "secrets", "secret-key-secret-name", secret)
    return {"accessKey": "access-key-secret-name", "secretKey": "secret-key-secret-name"}


def prefixed(prefix: str, files: dict[str, bytes]) -> dict[str, bytes]:
    return {f"{prefix}/{name}": body for name, body in files.items()}


# --- layouts ---------------------------------------------------------------------------------


def test_a_top_level_model_from_a_public_bucket_unsigned(public_s3: S3Endpoint, public_root: Path,
                                                         tmp_path: Path) -> None:
    files = model_files("my_model")
    write_bucket_files(public_root, "tms-models", prefixed("my_model", files))
    values = s3_values(repo(public_s3, "tms-models"))
    run = run_fetch(values, ["name=my_model,uri=model://repo0/my_model"], tmp_path)
    assert run.result("my_model").ok, run.results
    assert tree(run.dest / "my_model") == files
    assert run.plans[0].secret is None
    assert run.plans[0].reason.startswith("unsigned requests")
    assert sorted(p.name for p in run.dest.iterdir()) == ["my_model"]


def test_a_model_under_one_parent_folder_with_a_new_name(moto: S3Endpoint, tmp_path: Path) -> None:
    files = model_files("my_model")
    put_objects(moto.client(), "parent-layout", prefixed("team-a/my_model", files))
    values = s3_values(moto_repo(moto, "parent-layout", tmp_path))
    run = run_fetch(values, ["name=served,uri=model://repo0/team-a/my_model"], tmp_path)
    assert run.result("served").ok, run.results
    installed = tree(run.dest / "served")
    assert installed["1/model.py"] == files["1/model.py"]
    assert configured_name(run.dest / "served" / "config.pbtxt") == "served"


def test_folder_markers_are_skipped_and_empty_folders_kept(moto: S3Endpoint, tmp_path: Path) -> None:
    files = model_files("marked")
    put_objects(moto.client(), "markers", {"marked/": b"", "marked/1/": b"", "marked/2/": b"",
                                           **prefixed("marked", files)})
    run = run_fetch(s3_values(moto_repo(moto, "markers", tmp_path)), ["name=marked,uri=model://repo0/marked"], tmp_path)
    assert run.result("marked").ok, run.results
    assert tree(run.dest / "marked") == files
    assert (run.dest / "marked" / "2").is_dir()


def test_a_sibling_prefix_is_never_picked(moto: S3Endpoint, tmp_path: Path) -> None:
    put_objects(moto.client(), "siblings", {
        **prefixed("my_model", model_files("my_model")),
        **prefixed("my_model2", model_files("my_model2", addend=2.0)),
        "my_model.txt": b"not part of the model",
    })
    run = run_fetch(s3_values(moto_repo(moto, "siblings", tmp_path)), ["name=my_model,uri=model://repo0/my_model"],
                    tmp_path)
    assert tree(run.dest / "my_model") == model_files("my_model")


def test_more_than_a_thousand_objects_are_all_listed(tmp_path: Path) -> None:
    files = model_files("many")
    files.update({f"1/data/shard-{i:05d}.bin": f"shard {i}".encode() for i in range(1234)})
    write_bucket_files(tmp_path / "root", "many-objects", prefixed("many", files))
    with rclone_s3(tmp_path / "root", static=True) as server:
        first_page = server.client().list_objects_v2(Bucket="many-objects", Prefix="many/")
        assert first_page["IsTruncated"] and len(first_page["Contents"]) == 1000  # so paging is exercised
        run = run_fetch(s3_values(repo(server, "many-objects")), ["name=many,uri=model://repo0/many"], tmp_path,
                        transfer_concurrency=16)
    assert run.result("many").ok, run.results
    assert tree(run.dest / "many") == files


def test_a_large_object_arrives_byte_for_byte_in_ranged_parts(private_s3: S3Endpoint, private_root: Path,
                                                              tmp_path: Path) -> None:
    big = hashlib.sha256(b"seed").digest() * (70 * MiB // 32) + b"tail"
    files = {**model_files("big"), "1/weights.bin": big}
    write_bucket_files(private_root, "large", prefixed("big", files))
    metrics = FetchMetrics()
    run = run_fetch(s3_values(repo(private_s3, "large", **keyed(tmp_path))), ["name=big,uri=model://repo0/big"],
                    tmp_path, observer=FetchObserver(metrics))
    assert run.result("big").ok, run.results
    # Every part reported its bytes, once.
    assert metrics.registry.get_sample_value("model_fetcher_downloaded_bytes_total",
                                             {"source": "s3", "model": "big"}) == sum(len(b) for b in files.values())
    got = (run.dest / "big" / "1" / "weights.bin").read_bytes()
    assert len(got) == len(big) and hashlib.sha256(got).digest() == hashlib.sha256(big).digest()
    assert run.result("big").bytes_transferred == sum(len(b) for b in files.values())
    assert len(split_parts(len(big), TransferSettings())) > 1


def test_parts_stay_within_the_part_limit_for_huge_objects() -> None:
    settings = TransferSettings(part_size=16 * MiB, multipart_threshold=32 * MiB, max_parts=10_000)
    assert split_parts(32 * MiB, settings) == [(0, 32 * MiB)]
    parts = split_parts(500 * 1024**3 + 7, settings)
    assert len(parts) <= 10_000 and parts[0][0] == 0 and parts[-1][1] == 500 * 1024**3 + 7
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))


class RecordingS3Source(S3Source):
    """The real source, noting each (key, start, end) it reads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads: list[tuple[str, int, int]] = []

    def _reader(self, connection: Any, target: Any):
        read = super()._reader(connection, target)

        def recording(remote, start, end):
            self.reads.append((remote.key, start, end))
            return read(remote, start, end)

        return recording


def fetch_directly(values: dict[str, Any], spec: str, tmp_path: Path, source: S3Source) -> Path:
    plans = plan_lease(lease(values, spec), source.options)
    workdir = tmp_path / "work"
    workdir.mkdir()
    return source.fetch(plans[0], workdir).model_dir


def test_ranged_parts_cover_the_object_exactly_once(private_s3: S3Endpoint, private_root: Path,
                                                    tmp_path: Path) -> None:
    body = os.urandom(10 * MiB + 12345)
    write_bucket_files(private_root, "ranges", {"m/config.pbtxt": b'name: "m"\n', "m/1/blob": body})
    values = s3_values(repo(private_s3, "ranges", **keyed(tmp_path)))
    settings = TransferSettings(concurrency=4, part_size=1 * MiB, multipart_threshold=2 * MiB)
    source = RecordingS3Source(options_for(tmp_path), settings)
    model_dir = fetch_directly(values, "name=m,uri=model://repo0/m", tmp_path, source)
    assert (model_dir / "1" / "blob").read_bytes() == body
    parts = sorted((s, e) for key, s, e in source.reads if key == "m/1/blob")
    assert len(parts) == 11 and parts[0][0] == 0 and parts[-1][1] == len(body)
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    assert not (tmp_path / "work" / "partial").exists() or not any((tmp_path / "work" / "partial").iterdir())


def test_the_model_deadline_stops_the_download(public_s3: S3Endpoint, public_root: Path, tmp_path: Path) -> None:
    write_bucket_files(public_root, "deadline", prefixed("my_model", model_files("my_model")))
    run = run_fetch(s3_values(repo(public_s3, "deadline")), ["name=my_model,uri=model://repo0/my_model"], tmp_path,
                    model_timeout=1e-9)
    assert "the download passed its deadline" in (run.result("my_model").error or "")
    assert not (run.dest / "my_model").exists()


# --- credentials -----------------------------------------------------------------------------


def test_key_secrets_are_used_and_named_in_explain(private_s3: S3Endpoint, private_root: Path,
                                                   tmp_path: Path) -> None:
    write_bucket_files(private_root, "private", prefixed("my_model", model_files("my_model")))
    values = s3_values(repo(private_s3, "private", **keyed(tmp_path)))
    run = run_fetch(values, ["name=my_model,uri=model://repo0/my_model"], tmp_path)
    assert run.result("my_model").ok, run.results
    plan = run.plans[0].explain()
    assert plan["secret"] == "access-key-secret-name/secret-key-secret-name"
    assert "secret 'access-key-secret-name'" in plan["reason"] and "secret 'secret-key-secret-name'" in plan["reason"]
    assert TEST_SECRET_KEY not in json.dumps(plan) and TEST_ACCESS_KEY not in json.dumps(plan)


@pytest.mark.parametrize(
    ("access", "secret", "code", "named"),
    [
        (TEST_ACCESS_KEY, "wrong-secret-access-key-000000000000000", "SignatureDoesNotMatch", "secret-key-secret-name"),
        ("AKIAWRONGWRONGWRONG1", TEST_SECRET_KEY, "InvalidAccessKeyId", "access-key-secret-name"),
    ],
)
def test_wrong_keys_give_a_clear_403_naming_the_secret(private_s3: S3Endpoint, private_root: Path, tmp_path: Path,
                                                       access: str, secret: str, code: str, named: str) -> None:
    write_bucket_files(private_root, "private", prefixed("my_model", model_files("my_model")))
    values = s3_values(repo(private_s3, "private", **keyed(tmp_path, access, secret)))
    run = run_fetch(values, ["name=my_model,uri=model://repo0/my_model"], tmp_path)
    error = run.result("my_model").error or ""
    assert f"{code} (HTTP 403)" in error
    assert "s3://private/my_model/" in error and f"secret {named!r}" in error
    assert secret not in error and access not in error
    assert not (run.dest / "my_model").exists()


def test_unsigned_requests_to_a_private_bucket_say_it_is_not_public(private_s3: S3Endpoint, private_root: Path,
                                                                   tmp_path: Path) -> None:
    write_bucket_files(private_root, "private", prefixed("my_model", model_files("my_model")))
    run = run_fetch(s3_values(repo(private_s3, "private")), ["name=my_model,uri=model://repo0/my_model"], tmp_path)
    error = run.result("my_model").error or ""
    assert "using unsigned requests" in error and "the bucket is not public" in error


def test_the_default_chain_is_used_when_it_has_credentials(private_s3: S3Endpoint, private_root: Path,
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_bucket_files(private_root, "private", prefixed("my_model", model_files("my_model")))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
    s3_source.forget_cached_credentials()
    run = run_fetch(s3_values(repo(private_s3, "private")), ["name=my_model,uri=model://repo0/my_model"], tmp_path)
    assert run.result("my_model").ok, run.results
    assert run.plans[0].secret is None
    assert "default AWS credential chain: environment variables" in run.plans[0].reason


def test_the_service_account_role_is_reported_through_web_identity(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    role = "arn:aws:iam::00000000:role/Tms-s3-role"
    token = tmp_path / "token"
    token.write_text("a-projected-service-account-token")
    monkeypatch.setenv("AWS_ROLE_ARN", role)  # what EKS's pod identity webhook sets
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    s3_source.forget_cached_credentials()
    values = s3_values(repo(None, "tms-models", name="aws-models", awsRegion="us-west-2"), role=role)
    plan = plan_lease(lease(values, "name=my_model,uri=model://aws-models/my_model"), options_for(tmp_path))[0]
    assert plan.explain()["location"] == "s3://tms-models/my_model/ (region us-west-2)"
    assert plan.reason == f"the default AWS credential chain: web identity token (IAM role for the service account) " \
                          f"for role {role}"


def test_only_one_key_secret_is_a_resolution_error(tmp_path: Path) -> None:
    values = s3_values(repo("http://127.0.0.1:9", "b-b", accessKey="only-access"))
    with pytest.raises(ResolutionError, match="sets accessKey but not secretKey"):
        plan_lease(lease(values, "name=m,uri=model://repo0/m"), options_for(tmp_path))


# --- endpoint and region ---------------------------------------------------------------------


def test_endpoint_wins_over_region(moto: S3Endpoint, tmp_path: Path) -> None:
    put_objects(moto.client(), "both-set", prefixed("my_model", model_files("my_model")))
    values = s3_values(moto_repo(moto, "both-set", tmp_path, awsRegion="us-west-2"))
    run = run_fetch(values, ["name=my_model,uri=model://repo0/my_model"], tmp_path)
    assert run.result("my_model").ok, run.results
    assert run.plans[0].location == f"s3://both-set/my_model/ (endpoint {moto.url})"


def test_client_addressing_for_endpoint_and_region(tmp_path: Path) -> None:
    source = S3Source(options_for(tmp_path))
    credentials = s3_source.Credentials(kind="unsigned")
    custom = source._client(s3_source.S3Target(
        S3Repository("r", "tms-models", endpoint="http://play.min.io:9000", aws_region="eu-west-1"), "m/", credentials))
    assert custom.meta.endpoint_url == "http://play.min.io:9000"
    assert custom.meta.region_name == "eu-west-1"
    assert custom.meta.config.s3["addressing_style"] == "path"
    assert custom.meta.config.max_pool_connections >= source.settings.concurrency
    aws = source._client(s3_source.S3Target(S3Repository("r", "tms-models", aws_region="us-west-2"), "m/",
                                            credentials))
    assert aws.meta.region_name == "us-west-2"
    assert "us-west-2" in aws.meta.endpoint_url and "amazonaws.com" in aws.meta.endpoint_url


def test_an_unreachable_endpoint_is_named(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    values = s3_values(repo(url, "tms-models"))
    source = S3Source(options_for(tmp_path), request_attempts=1)
    with pytest.raises(DownloadError, match="cannot reach the S3 endpoint") as caught:
        fetch_directly(values, "name=m,uri=model://repo0/m", tmp_path, source)
    assert url in str(caught.value)
    assert "(Connection refused)" in str(caught.value)


def test_a_missing_bucket_is_named(public_s3: S3Endpoint, tmp_path: Path) -> None:
    run = run_fetch(s3_values(repo(public_s3, "no-such-bucket")), ["name=m,uri=model://repo0/m"], tmp_path)
    assert "bucket 'no-such-bucket' does not exist" in (run.result("m").error or "")


# --- refusals --------------------------------------------------------------------------------


def test_an_empty_prefix_names_bucket_prefix_and_neighbours(moto: S3Endpoint, tmp_path: Path) -> None:
    put_objects(moto.client(), "tms-models", prefixed("my_model", model_files("my_model")))
    run = run_fetch(s3_values(moto_repo(moto, "tms-models", tmp_path)), ["name=m,uri=model://repo0/my_modle"], tmp_path)
    error = run.result("m").error or ""
    assert "s3://tms-models/my_modle/" in error and "holds no objects" in error
    assert "my_model/" in error  # the folders beside it


@pytest.mark.parametrize(("hostile", "reason"), [
    ("evil/../x", "its '..' climbs out of the model folder"),
    ("evil/1/../../../etc/cron.d/x", "its '..' climbs out of the model folder"),
    ("evil/1/../..//x", "its '..' climbs out of the model folder"),
    ("evil/.", "it names the model folder itself, not a file"),
    ("evil/" + "x" * 256, "longer than the 255 bytes a file name may have"),
])
def test_keys_that_would_escape_the_model_folder_are_refused(moto: S3Endpoint, tmp_path: Path, hostile: str,
                                                             reason: str) -> None:
    bucket = "hostile-" + hashlib.sha256(hostile.encode()).hexdigest()[:8]
    put_objects(moto.client(), bucket, {**prefixed("evil", model_files("evil")), hostile: b"owned"})
    assert hostile in listed_keys(moto, bucket)  # the server kept the key as written
    run = run_fetch(s3_values(moto_repo(moto, bucket, tmp_path)), ["name=evil,uri=model://repo0/evil"], tmp_path)
    error = run.result("evil").error or ""
    assert f"refusing object key {hostile[:80]!r}" in error and reason in error
    assert not (run.dest / "evil").exists()
    assert not list(tmp_path.rglob("x"))


# Keys that `aws s3 cp --recursive` (awscli 1.45) downloads without a warning, and where it puts them.
AWS_LAYOUT_KEYS = {
    "odd/": b"",  # the console's folder marker of the model folder itself
    "odd/config.pbtxt": b'name: "odd"\n',
    "odd//1/model.py": b"double slash",  # the console's "folder" named "" under odd/
    "odd/./1/dot.py": b"dot segment",
    "odd/1/a..b.bin": b"dots inside a name",
    "odd/1/with space \u00e9\u6a21\u578b.txt": b"spaces and unicode",
    "odd/1/back\\slash.txt": b"a backslash is an ordinary character on Linux",
    "odd/1/x/../up.txt": b"'..' that stays inside",
    "odd/2/": b"",  # an empty version folder
    "odd/3/": b"",
    "odd/3/kept.txt": b"marker and file",
}
AWS_LAYOUT_TREE = {
    "config.pbtxt": b'name: "odd"\n',
    "1/model.py": b"double slash",
    "1/dot.py": b"dot segment",
    "1/a..b.bin": b"dots inside a name",
    "1/with space \u00e9\u6a21\u578b.txt": b"spaces and unicode",
    "1/back\\slash.txt": b"a backslash is an ordinary character on Linux",
    "1/up.txt": b"'..' that stays inside",
    "3/kept.txt": b"marker and file",
}


def listed_keys(endpoint: S3Endpoint, bucket: str) -> set[str]:
    return {o["Key"] for o in endpoint.client().list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_keys_are_laid_out_as_aws_s3_cp_lays_them_out(moto: S3Endpoint, tmp_path: Path) -> None:
    put_objects(moto.client(), "aws-layout", AWS_LAYOUT_KEYS)
    assert listed_keys(moto, "aws-layout") == set(AWS_LAYOUT_KEYS)  # the server kept every key as written
    run = run_fetch(s3_values(moto_repo(moto, "aws-layout", tmp_path)), ["name=odd,uri=model://repo0/odd"], tmp_path)
    assert run.result("odd").ok, run.results
    assert tree(run.dest / "odd") == AWS_LAYOUT_TREE
    assert (run.dest / "odd" / "2").is_dir()  # markers keep empty version folders


@pytest.mark.skipif(shutil.which("aws") is None, reason="the aws command line is not installed")
def test_the_layout_is_the_one_aws_s3_cp_makes(moto: S3Endpoint, tmp_path: Path) -> None:
    put_objects(moto.client(), "aws-compare", AWS_LAYOUT_KEYS)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "moto-access-key", "AWS_SECRET_ACCESS_KEY": "moto-secret-key",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    copied = subprocess.run(["aws", "s3", "cp", "--recursive", "--only-show-errors", "--endpoint-url", moto.url,
                             "s3://aws-compare/odd/", str(tmp_path / "aws")], env=env, capture_output=True,
                            text=True, timeout=120)
    assert copied.returncode == 0 and copied.stderr == "", copied.stderr
    assert tree(tmp_path / "aws") == AWS_LAYOUT_TREE


def test_a_prefix_that_holds_models_rather_than_a_model_says_so(moto: S3Endpoint, tmp_path: Path) -> None:
    put_objects(moto.client(), "one-level-up", prefixed("team/my_model", model_files("my_model")))
    run = run_fetch(s3_values(moto_repo(moto, "one-level-up", tmp_path)), ["name=m,uri=model://repo0/team"], tmp_path)
    error = run.result("m").error or ""
    assert "holds no Triton model" in error and "model folder(s) my_model" in error


def test_the_size_limit_is_checked_before_downloading(moto: S3Endpoint, tmp_path: Path) -> None:
    put_objects(moto.client(), "limited", prefixed("my_model", model_files("my_model")))
    run = run_fetch(s3_values(moto_repo(moto, "limited", tmp_path)), ["name=my_model,uri=model://repo0/my_model"],
                    tmp_path,
                    max_model_bytes=100)
    assert "bytes, more than the limit of 100 bytes" in (run.result("my_model").error or "")


def test_select_objects_refuses_a_file_that_is_also_a_folder() -> None:
    from fetcher.sources.s3_keys import select_objects

    with pytest.raises(ModelLayoutError, match="both a file and the folder"):
        select_objects([("m/1", 1), ("m/1/model.py", 2)], "m/", where="s3://b/m/")


# --- TLS -------------------------------------------------------------------------------------


def test_an_explicit_ca_bundle_wins_over_aws_ca_bundle(tmp_path: Path, ca_file: Path, ca: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from devkit.s3_server import rclone_binary, _wait_for_port

    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    for blob in cert.cert_chain_pems[1:]:
        with open(tmp_path / "cert.pem", "ab") as out:
            out.write(blob.bytes())
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    root = tmp_path / "tls-root"
    write_bucket_files(root, "tls-models", prefixed("my_model", model_files("my_model")))
    port = free_port()
    args = [str(rclone_binary()), "serve", "s3", "--config", "/dev/null", "--addr", f"127.0.0.1:{port}",
            "--cert", str(tmp_path / "cert.pem"), "--key", str(tmp_path / "key.pem"), str(root)]
    with open(tmp_path / "rclone.log", "wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process, timeout=20, log=tmp_path / "rclone.log")
        monkeypatch.setenv("AWS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
        values = s3_values(repo(f"https://127.0.0.1:{port}", "tls-models"))
        refused = run_fetch(values, ["name=my_model,uri=model://repo0/my_model"], tmp_path / "a")
        assert "TLS verification failed" in (refused.result("my_model").error or "")
        accepted = run_fetch(values, ["name=my_model,uri=model://repo0/my_model"], tmp_path / "b",
                             ca_bundle=str(ca_file))
        assert accepted.result("my_model").ok, accepted.results
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- the command line ------------------------------------------------------------------------


def test_cli_fetch_and_explain_an_s3_model(private_s3: S3Endpoint, private_root: Path, tmp_path: Path) -> None:
    write_bucket_files(private_root, "cli-models", prefixed("my_model", model_files("my_model")))
    values = tmp_path / "values.yaml"
    # The reference's spelling `S3:` with key secrets.
    values.write_text(yaml.safe_dump({
        **s3_values(repo(private_s3, "cli-models", **keyed(tmp_path)), key="S3"),
        "lease": {"models": ["name=my_model,uri=model://repo0/my_model"]},
    }))
    env = {**isolated_aws_environment(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    common = ["--values", str(values), "--secrets-dir", str(tmp_path / "secrets")]
    explained = subprocess.run([sys.executable, "-m", "fetcher", "explain", *common, "--json"], capture_output=True,
                               text=True, timeout=120, env=env)
    assert explained.returncode == 0, explained.stderr
    assert json.loads(explained.stdout) == [{
        "name": "my_model",
        "uri": "model://repo0/my_model",
        "source": "s3",
        "repository": "repo0",
        "location": f"s3://cli-models/my_model/ (endpoint {private_s3.url})",
        "secret": "access-key-secret-name/secret-key-secret-name",
        "reason": "access key ID from secret 'access-key-secret-name', "
                  "secret access key from secret 'secret-key-secret-name'",
    }]
    dest = tmp_path / "models"
    fetched = subprocess.run([sys.executable, "-m", "fetcher", "fetch", *common, "--dest", str(dest),
                              "--termination-log", str(tmp_path / "termination")],
                             capture_output=True, text=True, timeout=120, env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert tree(dest / "my_model") == model_files("my_model")
    assert TEST_SECRET_KEY not in fetched.stderr and TEST_ACCESS_KEY not in fetched.stderr

    write_secret(tmp_path / "secrets", "secret-key-secret-name", "not-the-right-secret-key-000000000000000")
    failed = subprocess.run([sys.executable, "-m", "fetcher", "fetch", *common, "--dest", str(tmp_path / "other"),
                             "--termination-log", str(tmp_path / "termination")],
                            capture_output=True, text=True, timeout=120, env=env)
    assert failed.returncode != 0
    assert "model 'my_model':" in failed.stderr and "SignatureDoesNotMatch (HTTP 403)" in failed.stderr
    assert "secret 'secret-key-secret-name'" in (tmp_path / "termination").read_text()


def test_the_models_of_a_lease_share_one_connection_and_rotated_secrets_make_a_new_one(
        private_s3: S3Endpoint, private_root: Path, tmp_path: Path) -> None:
    for name in ("first", "second", "third"):
        write_bucket_files(private_root, "shared", prefixed(f"lease/{name}", model_files(name)))
    values = s3_values(repo(private_s3, "shared", **keyed(tmp_path)))
    options = options_for(tmp_path)
    specs = [f"name={name},uri=model://repo0/lease/{name}" for name in ("first", "second", "third")]
    dest = tmp_path / "repository"
    repository = Repository(root=dest, staging=default_staging_dir(dest))
    results = fetch_all(plan_lease(lease(values, *specs), options), repository, options, concurrency=3)
    assert all(r.ok for r in results), results
    assert len(options.clients) == 1
    # A rotated secret (here a wrong one, which the server refuses) is read again, not served from the shared client.
    write_secret(tmp_path / "secrets", "secret-key-secret-name", "rotated-secret-access-key-000000000000")
    write_bucket_files(private_root, "shared", prefixed("lease/fourth", model_files("fourth")))
    again = fetch_all(plan_lease(lease(values, "name=fourth,uri=model://repo0/lease/fourth"), options),
                      repository, options, concurrency=1)
    assert len(options.clients) == 2
    assert not again[0].ok and "SignatureDoesNotMatch" in (again[0].error or ""), again

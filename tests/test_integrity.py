"""Every byte checked against what the source says it is; a change at the same URI noticed.

Each check has a case where a corrupted or changed source is caught and nothing is installed:
zip members (CRC-32, size), S3 objects (their checksum, else the MD5 of a single-part ETag), the
per-file digests a lease may give, and the validators compared on a restart (the change check).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from devkit.fault_proxy import ProxyRule, RunningProxy, fault_proxy
from devkit.https_server import Fault, serve_files
from devkit.models import model_files, zip_model
from devkit.s3_server import moto_s3, put_objects, rclone_s3, write_bucket_files
from devkit.secrets import write_secret
from tests.support.lease_runs import Run, run_fetch, s3_values

MiB = 1024 * 1024
WEIGHTS = os.urandom(2 * MiB + 99)
FILES = {**model_files("m"), "1/weights.bin": WEIGHTS}

pytestmark = pytest.mark.usefixtures("no_ambient_aws_credentials")


def stored_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return path


def data_offset(path: Path, member: str) -> int:
    """Where the bytes of ``member`` start in the zip (after its local header)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    raw = path.read_bytes()
    name_length = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little")
    extra_length = int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    return info.header_offset + 30 + name_length + extra_length


def nothing_installed(run: Run) -> bool:
    staging = run.dest.parent / f".{run.dest.name}.staging"
    leftovers = [p.name for p in staging.iterdir() if p.name != "manifest.json"] if staging.exists() else []
    return (not run.dest.exists() or not any(run.dest.iterdir())) and not leftovers


def https_values(url: str, **extra: Any) -> dict[str, Any]:
    return {"lease": {"models": [{"name": "m", "uri": url, **extra}]}}


# --- zips: every member's CRC-32 and size ---------------------------------------------------------


def test_a_zip_member_that_fails_its_crc_32_is_caught(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    archive = stored_zip(site / "m.zip", FILES)
    raw = bytearray(archive.read_bytes())
    raw[data_offset(archive, "1/weights.bin") + 1000] ^= 0xFF  # damaged at the source, its CRC record intact
    archive.write_bytes(bytes(raw))
    with serve_files(site) as server:
        run = run_fetch(https_values(server.url("m.zip")), [], tmp_path)
    error = run.result("m").error or ""
    assert "entry '1/weights.bin' does not match the CRC-32 its archive records" in error
    assert nothing_installed(run)


def test_a_zip_member_whose_recorded_size_is_wrong_is_caught(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    archive = stored_zip(site / "m.zip", FILES)
    raw = bytearray(archive.read_bytes())
    # The central directory's record of the member claims one byte less than it holds.
    central = raw.index(b"PK\x01\x02")
    while raw[central + 46:central + 46 + len("1/weights.bin")] != b"1/weights.bin":
        central = raw.index(b"PK\x01\x02", central + 4)
    for field in (central + 20, central + 24):  # compressed and uncompressed size
        raw[field:field + 4] = (len(WEIGHTS) - 1).to_bytes(4, "little")
    archive.write_bytes(bytes(raw))
    with serve_files(site) as server:
        run = run_fetch(https_values(server.url("m.zip")), [], tmp_path)
    assert "entry '1/weights.bin'" in (run.result("m").error or "")
    assert nothing_installed(run)


# --- the lease's per-file digests --------------------------------------------------------------------


def digests_of(files: dict[str, bytes]) -> dict[str, str]:
    return {path: hashlib.sha256(content).hexdigest() for path, content in files.items()}


@pytest.fixture()
def zip_site(tmp_path: Path) -> Iterator[Any]:
    site = tmp_path / "site"
    site.mkdir()
    zip_model(site / "m.zip", FILES)
    with serve_files(site) as server:
        yield server


def test_per_file_digests_pass_and_install(tmp_path: Path, zip_site) -> None:
    run = run_fetch(https_values(zip_site.url("m.zip"), files=digests_of(FILES)), [], tmp_path)
    assert run.result("m").ok, run.result("m").error
    assert (run.dest / "m" / "1" / "weights.bin").read_bytes() == WEIGHTS


@pytest.mark.parametrize("change, message", [
    ({"1/weights.bin": "0" * 64}, "file '1/weights.bin' has sha256 "),
    ({"1/missing.bin": "0" * 64}, "file '1/missing.bin' of the model's files digests is missing"),
    ({"1/model.py": None}, "file '1/model.py' is not in the model's files digests"),
])
def test_a_file_that_breaks_the_digests_fails_the_model_by_name(tmp_path: Path, zip_site, change: dict,
                                                                message: str) -> None:
    digests = digests_of(FILES)
    for path, digest in change.items():
        if digest is None:
            digests.pop(path)
        else:
            digests[path] = digest
    run = run_fetch(https_values(zip_site.url("m.zip"), files=digests), [], tmp_path)
    assert message in (run.result("m").error or "")
    assert nothing_installed(run)


def test_per_file_digests_apply_to_s3_models_too(tmp_path: Path) -> None:
    root = tmp_path / "buckets"
    write_bucket_files(root, "models", {f"m/{k}": v for k, v in FILES.items()})
    with rclone_s3(root, static=True) as endpoint:
        values = s3_values({"repositoryName": "repo0", "bucketName": "models", "endpoint": endpoint.url})
        digests = {**digests_of(FILES), "config.pbtxt": hashlib.sha256(b"another config").hexdigest()}
        values["lease"] = {"models": [{"name": "m", "uri": "model://repo0/m", "files": digests}]}
        run = run_fetch(values, [], tmp_path)
    assert "file 'config.pbtxt' has sha256 " in (run.result("m").error or "")
    assert nothing_installed(run)


# --- S3: the object's checksum, else the MD5 of its ETag --------------------------------------------


@pytest.fixture()
def moto_proxy() -> Iterator[tuple[Any, RunningProxy]]:
    with moto_s3() as endpoint:
        with fault_proxy(endpoint.url) as proxy:
            yield endpoint.client(), proxy


def moto_values(proxy: RunningProxy, tmp_path: Path) -> dict[str, Any]:
    """moto reads the objects of a private bucket only with a signature; it accepts any keys."""
    write_secret(tmp_path / "secrets", "s3-access", "moto-key-id-00000001")
    write_secret(tmp_path / "secrets", "s3-secret", "moto-secret")
    return s3_values({"repositoryName": "repo0", "bucketName": "models", "endpoint": proxy.url,
                      "accessKey": "s3-access", "secretKey": "s3-secret"})


def upload_with_checksums(client: Any) -> None:
    client.create_bucket(Bucket="models")
    for (path, content), algorithm in zip(FILES.items(), ("SHA256", "CRC32", "SHA1")):
        client.put_object(Bucket="models", Key=f"m/{path}", Body=content, ChecksumAlgorithm=algorithm)


def test_s3_checksums_are_checked(moto_proxy, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    client, proxy = moto_proxy
    upload_with_checksums(client)
    with caplog.at_level("INFO", logger="model-fetcher"):
        run = run_fetch(moto_values(proxy, tmp_path), ["name=m,uri=model://repo0/m"], tmp_path)
    assert run.result("m").ok, run.result("m").error
    assert "event=s3-verified crc32=1 sha1=1 sha256=1" in caplog.text
    assert [r[2] for r in proxy.seen("GET", "/models/m/")] == [None, None, None]  # whole objects: one GET each


def test_an_s3_object_that_breaks_its_checksum_is_caught(moto_proxy, tmp_path: Path) -> None:
    client, proxy = moto_proxy
    upload_with_checksums(client)
    proxy.add(ProxyRule("GET", "/models/m/1/weights.bin", Fault(times=1, corrupt_at=12345)))
    run = run_fetch(moto_values(proxy, tmp_path), ["name=m,uri=model://repo0/m"], tmp_path)
    error = run.result("m").error or ""
    # Caught by botocore as it streams (boto3's GET) or by the fetcher once the file is whole (a presigned GET).
    assert "'m/1/weights.bin'" in error and ("checksum S3 gives" in error or "has sha1 " in error), error
    assert nothing_installed(run)


def upload_with_crc_checksums(client: Any) -> None:
    """CRC64NVME is what current AWS SDKs put on new uploads by default; CRC32C is the other CRC S3 offers."""
    client.create_bucket(Bucket="models")
    for (path, content), algorithm in zip(FILES.items(), ("CRC64NVME", "CRC32C", "CRC64NVME")):
        client.put_object(Bucket="models", Key=f"m/{path}", Body=content, ChecksumAlgorithm=algorithm)


def test_s3_crc32c_and_crc64nvme_checksums_are_checked(moto_proxy, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    client, proxy = moto_proxy
    upload_with_crc_checksums(client)
    with caplog.at_level("INFO", logger="model-fetcher"):
        run = run_fetch(moto_values(proxy, tmp_path), ["name=m,uri=model://repo0/m"], tmp_path)
    assert run.result("m").ok, run.result("m").error
    assert "event=s3-verified crc32c=1 crc64nvme=2" in caplog.text


def test_an_s3_object_that_breaks_its_crc64nvme_is_caught(moto_proxy, tmp_path: Path) -> None:
    client, proxy = moto_proxy
    upload_with_crc_checksums(client)
    proxy.add(ProxyRule("GET", "/models/m/1/weights.bin", Fault(times=1, corrupt_at=12345)))
    run = run_fetch(moto_values(proxy, tmp_path), ["name=m,uri=model://repo0/m"], tmp_path)
    error = run.result("m").error or ""
    assert "'m/1/weights.bin'" in error and ("checksum S3 gives" in error or "has crc64nvme " in error), error
    assert nothing_installed(run)


def test_an_s3_object_that_breaks_its_etag_md5_is_caught(tmp_path: Path) -> None:
    root = tmp_path / "buckets"
    write_bucket_files(root, "models", {f"m/{k}": v for k, v in FILES.items()})
    with rclone_s3(root, static=True) as endpoint, fault_proxy(endpoint.url) as proxy:
        proxy.add(ProxyRule("GET", "/models/m/1/weights.bin", Fault(times=1, corrupt_at=7)))
        run = run_fetch(s3_values({"repositoryName": "repo0", "bucketName": "models", "endpoint": proxy.url}),
                        ["name=m,uri=model://repo0/m"], tmp_path)
    error = run.result("m").error or ""
    assert "file '1/weights.bin' (object 'm/1/weights.bin') has md5 " in error and "S3 says" in error
    assert nothing_installed(run)


def test_a_multipart_etag_is_recorded_not_computed(moto_proxy, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    client, proxy = moto_proxy
    put_objects(client, "models", {f"m/{k}": v for k, v in model_files("m").items()})
    upload = client.create_multipart_upload(Bucket="models", Key="m/1/weights.bin")
    first, second = os.urandom(5 * MiB), os.urandom(1000)
    parts = [client.upload_part(Bucket="models", Key="m/1/weights.bin", UploadId=upload["UploadId"],
                                PartNumber=number, Body=body) for number, body in ((1, first), (2, second))]
    client.complete_multipart_upload(Bucket="models", Key="m/1/weights.bin", UploadId=upload["UploadId"],
                                     MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": p["ETag"]}
                                                                for n, p in enumerate(parts)]})
    with caplog.at_level("INFO", logger="model-fetcher"):
        run = run_fetch(moto_values(proxy, tmp_path), ["name=m,uri=model://repo0/m"], tmp_path)
    assert run.result("m").ok, run.result("m").error
    # The small objects carry the CRC32 that current SDKs add to every upload by default.
    assert "event=s3-verified crc32=2 etag-recorded=1" in caplog.text
    assert (run.dest / "m" / "1" / "weights.bin").read_bytes() == first + second

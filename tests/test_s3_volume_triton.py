"""The real Triton server loads an S3-fetched model and a volume-linked model from one repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devkit.models import model_files, write_model
from devkit.triton import run_triton
from fetcher.sources import s3 as s3_source
from tests.support.lease_runs import run_fetch
from devkit.s3_server import rclone_s3, write_bucket_files


@pytest.mark.triton
def test_triton_serves_models_from_s3_and_from_a_volume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    s3_source.forget_cached_credentials()
    write_bucket_files(tmp_path / "s3", "tms-models",
                       {f"models/my_model/{k}": v for k, v in model_files("my_model", addend=1.0).items()})
    write_model(tmp_path / "volumes" / "volume-models" / "vol_model", "vol_model", addend=10.0)
    write_model(tmp_path / "volumes" / "volume-models" / "shared", "shared", addend=100.0)
    with rclone_s3(tmp_path / "s3", static=True) as server:
        values = {"server": {"modelRepositories": {
            "volumes": [{"repositoryName": "volume-models", "volumeClaimName": "example-volume-claim"}],
            "s3": [{"repositoryName": "repo0", "bucketName": "tms-models", "endpoint": server.url}],
        }}}
        run = run_fetch(values, [
            "name=my_model,uri=model://repo0/models/my_model",
            "name=vol_model,uri=model://volume-models/vol_model",
            "name=renamed,uri=model://volume-models/shared",  # config says "shared": copied and renamed
        ], tmp_path)
    assert all(r.ok for r in run.results), run.results
    assert (run.dest / "vol_model").is_symlink() and not (run.dest / "renamed").is_symlink()
    assert sorted(os.listdir(run.dest)) == ["my_model", "renamed", "vol_model"]
    s3_source.forget_cached_credentials()

    with run_triton(run.dest, tmp_path / "triton.log") as triton:
        for name in ("my_model", "vol_model", "renamed"):
            assert triton.model_ready(name), triton.log()[-3000:]
        assert triton.infer("my_model", [1, 2, 3, 4]) == [2, 3, 4, 5]
        assert triton.infer("vol_model", [1, 2, 3, 4]) == [11, 12, 13, 14]
        assert triton.infer("renamed", [0, 0, 0, 0]) == [100, 100, 100, 100]

"""The real Triton server loads what the fetcher installed, and answers inferences."""

from __future__ import annotations

from pathlib import Path

import pytest

from devkit.models import model_files, zip_model
from devkit.triton import run_triton

pytestmark = pytest.mark.triton


def test_triton_serves_fetched_zips_in_both_layouts_and_a_renamed_model(tmp_path: Path, site: Path, http_server, cli) -> None:
    # The zip's config says "upstream_name"; the lease calls it "renamed": Triton refuses a mismatch.
    zip_model(site / "renamed.zip", model_files("upstream_name", addend=10.0), top_folder="upstream_name")
    repository = tmp_path / "models" / "repository"
    result = cli("fetch", "--dest", repository, "--termination-log", tmp_path / "t",
                 "--model", f"name=my_model,uri={http_server.url('my_model.zip')}",
                 "--model", f"name=nested,uri={http_server.url('nested.zip')}",
                 "--model", f"name=renamed,uri={http_server.url('renamed.zip')}")
    assert result.status == 0, result.stderr
    assert sorted(p.name for p in repository.iterdir()) == ["my_model", "nested", "renamed"]

    with run_triton(repository, tmp_path / "triton.log") as triton:
        for name in ("my_model", "nested", "renamed"):
            assert triton.model_ready(name), triton.log()[-2000:]
        assert triton.infer("my_model", [1, 2, 3, 4]) == [2, 3, 4, 5]
        assert triton.infer("renamed", [1, 2, 3, 4]) == [11, 12, 13, 14]

"""The repository holds the lease, exactly: a model the lease dropped is removed before Triton starts.

Init mode on a kept volume (an ``existingClaim``, or a restarted init container) runs ``fetch``
again on the same root with the reduced lease; the model it dropped must be gone, and the real
Triton, started on the root as the chart starts it, must not serve it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from devkit.models import model_files, write_model, zip_model
from devkit.triton import run_triton


@pytest.fixture()
def repository(tmp_path: Path) -> Path:
    return tmp_path / "models" / "repository"


def _fetch(cli, repository: Path, tmp_path: Path, *models: str, extra: tuple[str, ...] = ()):
    args = ["fetch", "--dest", repository, "--termination-log", tmp_path / "termination-log",
            "--volumes-dir", tmp_path / "volumes", *extra]
    for spec in models:
        args += ["--model", spec]
    return cli(*args)


def _staging(repository: Path) -> Path:
    return repository.parent / f".{repository.name}.staging"


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.triton
def test_a_model_dropped_from_the_lease_is_gone_after_a_restart(tmp_path: Path, site: Path, http_server, cli,
                                                                 repository: Path) -> None:
    zip_model(site / "beta.zip", model_files("beta", addend=2.0))
    alpha, beta = f"name=alpha,uri={http_server.url('my_model.zip')}", f"name=beta,uri={http_server.url('beta.zip')}"
    assert _fetch(cli, repository, tmp_path, alpha, beta).status == 0
    assert _names(repository) == ["alpha", "beta"]

    # The pod restarts with a lease that no longer names beta, on the same volume.
    result = _fetch(cli, repository, tmp_path, alpha)
    assert result.status == 0, result.stderr
    assert "model=beta event=removed" in result.stderr
    assert "model=alpha event=unchanged" in result.stderr  # the kept model is not fetched again
    assert _names(repository) == ["alpha"]
    assert not [name for name in _names(_staging(repository)) if name.startswith("work-")]  # no work folder left
    assert sorted(json.loads((_staging(repository) / "manifest.json").read_text())) == ["alpha"]

    with run_triton(repository, tmp_path / "triton.log") as triton:  # default model control, as in init mode
        assert triton.model_ready("alpha"), triton.log()[-2000:]
        assert triton.get("/v2/models/beta/ready")[0] != 200
        status, index = triton.post("/v2/repository/index")
        assert status == 200 and [m["name"] for m in json.loads(index)] == ["alpha"]


def test_an_empty_lease_empties_the_root(tmp_path: Path, http_server, cli, repository: Path) -> None:
    assert _fetch(cli, repository, tmp_path, f"name=alpha,uri={http_server.url('my_model.zip')}").status == 0
    result = _fetch(cli, repository, tmp_path)
    assert result.status == 0, result.stderr
    assert _names(repository) == []


def test_unrecorded_models_and_volume_links_go_other_entries_stay(tmp_path: Path, http_server, cli,
                                                                  repository: Path) -> None:
    write_model(tmp_path / "volumes" / "claim" / "linked", "linked")
    (tmp_path / "values.yaml").write_text(
        "server: {modelRepositories: {volumes: [{repositoryName: claim, volumeClaimName: pvc}]}}\n")
    values = ("--values", str(tmp_path / "values.yaml"))
    alpha = f"name=alpha,uri={http_server.url('my_model.zip')}"
    assert _fetch(cli, repository, tmp_path, alpha, "name=linked,uri=model://claim/linked", extra=values).status == 0
    assert (repository / "linked").is_symlink()
    # What a lost manifest, or an older fetcher, leaves behind: a model folder nobody recorded.
    write_model(repository / "orphan", "orphan")
    # What the fetcher did not put there and does not know to be a model: left alone, reported.
    (repository / "notes.txt").write_text("not a model")
    (repository / "scratch").mkdir()

    result = _fetch(cli, repository, tmp_path, alpha, extra=values)
    assert result.status == 0, result.stderr
    assert _names(repository) == ["alpha", "notes.txt", "scratch"]
    assert "model=linked event=removed" in result.stderr and "model=orphan event=removed" in result.stderr
    assert "entry=notes.txt event=left-in-place" in result.stderr and "entry=scratch event=left-in-place" in result.stderr
    # Removing the link removed the link only: the claim's model is untouched.
    assert (tmp_path / "volumes" / "claim" / "linked" / "config.pbtxt").is_file()
    assert not [name for name in _names(_staging(repository)) if name.startswith("work-")]  # no work folder left


def test_a_recorded_model_whose_folder_vanished_is_forgotten(tmp_path: Path, site: Path, http_server, cli,
                                                             repository: Path) -> None:
    zip_model(site / "beta.zip", model_files("beta", addend=2.0))
    alpha, beta = f"name=alpha,uri={http_server.url('my_model.zip')}", f"name=beta,uri={http_server.url('beta.zip')}"
    assert _fetch(cli, repository, tmp_path, alpha, beta).status == 0
    shutil.rmtree(repository / "beta")
    result = _fetch(cli, repository, tmp_path, alpha)
    assert result.status == 0 and "model=beta event=removed" in result.stderr
    assert sorted(json.loads((_staging(repository) / "manifest.json").read_text())) == ["alpha"]


def test_a_staging_folder_inside_the_root_is_refused(tmp_path: Path, http_server, cli, repository: Path) -> None:
    result = _fetch(cli, repository, tmp_path, f"name=alpha,uri={http_server.url('my_model.zip')}",
                    extra=("--staging-dir", str(repository / ".staging")))
    assert result.status != 0
    assert "inside the repository root" in result.stderr and "--staging-dir" in result.stderr
    assert not os.path.lexists(repository / "alpha")

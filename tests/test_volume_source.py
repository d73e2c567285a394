"""Volume repositories on real directories: link and copy modes, renames, escapes, missing models."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devkit.models import write_model
from fetcher.errors import ModelLayoutError, ModelSpecError, ResolutionError
from fetcher.logs import get_logger
from fetcher.model_folder import configured_name
from tests.support.lease_runs import run_fetch, tree, volume_values

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def volumes(tmp_path: Path) -> Path:
    """``<volumes-dir>/volume-models`` as the chart mounts the claim, holding the reference's my_model."""
    root = tmp_path / "volumes"
    write_model(root / "volume-models" / "my_model", "my_model")
    return root


def test_links_the_model_folder_by_default(volumes: Path, tmp_path: Path) -> None:
    run = run_fetch(volume_values("volume-models"), ["name=my_model,uri=model://volume-models/my_model"], tmp_path)
    assert run.result("my_model").ok, run.results
    installed = run.dest / "my_model"
    assert installed.is_symlink()
    assert Path(os.readlink(installed)) == volumes / "volume-models" / "my_model"
    assert tree(installed) == tree(volumes / "volume-models" / "my_model")
    assert sorted(p.name for p in run.dest.iterdir()) == ["my_model"]


def test_copies_the_model_folder_in_copy_mode(volumes: Path, tmp_path: Path) -> None:
    run = run_fetch(volume_values("volume-models"), ["name=my_model,uri=model://volume-models/my_model"], tmp_path,
                    volume_mode="copy")
    assert run.result("my_model").ok, run.results
    installed = run.dest / "my_model"
    assert installed.is_dir() and not installed.is_symlink()
    assert tree(installed) == tree(volumes / "volume-models" / "my_model")
    assert run.result("my_model").bytes_transferred == sum(len(v) for v in tree(installed).values())


def test_a_different_lease_name_is_copied_and_renamed(volumes: Path, tmp_path: Path) -> None:
    records: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = get_logger()
    logger.addHandler(handler)
    previous_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        run = run_fetch(volume_values("volume-models"), ["name=prod_model,uri=model://volume-models/my_model"],
                        tmp_path)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
    assert run.result("prod_model").ok, run.results
    installed = run.dest / "prod_model"
    assert installed.is_dir() and not installed.is_symlink()
    assert configured_name(installed / "config.pbtxt") == "prod_model"
    # The volume itself is untouched.
    assert configured_name(volumes / "volume-models" / "my_model" / "config.pbtxt") == "my_model"
    assert any("event=copy-instead-of-link" in line and "'my_model'" in line for line in records)


def test_a_config_without_a_name_is_still_linked(tmp_path: Path) -> None:
    model = write_model(tmp_path / "volumes" / "vol" / "nameless", "nameless")
    (model / "config.pbtxt").write_text('backend: "python"\n')
    run = run_fetch(volume_values("vol"), ["name=other,uri=model://vol/nameless"], tmp_path)
    assert run.result("other").ok and (run.dest / "other").is_symlink()


def test_models_under_a_parent_folder_and_links_inside_the_volume(tmp_path: Path) -> None:
    volume = tmp_path / "volumes" / "vol"
    write_model(volume / "team" / "v3", "current")
    (volume / "team" / "current").symlink_to("v3")  # a link that stays inside the volume is fine
    run = run_fetch(volume_values("vol"), ["name=current,uri=model://vol/team/current"], tmp_path)
    assert run.result("current").ok, run.results
    # The link goes through the mount path (the same in Triton's container), with the inner link resolved.
    assert Path(os.readlink(run.dest / "current")) == volume / "team" / "v3"


def test_a_symlink_out_of_the_volume_is_refused(tmp_path: Path) -> None:
    outside = write_model(tmp_path / "elsewhere" / "secret_model", "secret_model")
    volume = tmp_path / "volumes" / "vol"
    volume.mkdir(parents=True)
    (volume / "secret_model").symlink_to(outside)
    for mode in ("link", "copy"):
        run = run_fetch(volume_values("vol"), ["name=secret_model,uri=model://vol/secret_model"], tmp_path,
                        volume_mode=mode)
        result = run.result("secret_model")
        assert not result.ok and "outside the volume" in (result.error or "")
        assert not os.path.lexists(run.dest / "secret_model")


def test_a_symlink_inside_the_model_that_leads_out_is_refused(tmp_path: Path) -> None:
    (tmp_path / "host-file").write_text("not for Triton")
    model = write_model(tmp_path / "volumes" / "vol" / "m", "m")
    (model / "1" / "weights.bin").symlink_to(tmp_path / "host-file")
    run = run_fetch(volume_values("vol"), ["name=m,uri=model://vol/m"], tmp_path)
    assert not run.result("m").ok
    assert "'1/weights.bin' is a link that leads outside the volume" in (run.result("m").error or "")
    assert not os.path.lexists(run.dest / "m")


def test_a_volume_mount_that_is_itself_a_link_keeps_working(tmp_path: Path) -> None:
    # Kubernetes' atomic-writer volumes and some CSI drivers mount through links.
    real = tmp_path / "real-volume"
    write_model(real / "m", "m")
    (tmp_path / "volumes").mkdir()
    (tmp_path / "volumes" / "vol").symlink_to(real)
    run = run_fetch(volume_values("vol"), ["name=m,uri=model://vol/m"], tmp_path)
    assert run.result("m").ok, run.results
    assert tree(run.dest / "m") == tree(real / "m")


@pytest.mark.parametrize("uri", ["model://vol/../etc", "model://vol/a/../../etc", "model://vol/./m"])
def test_dot_segments_are_refused_before_anything_is_read(uri: str, tmp_path: Path) -> None:
    with pytest.raises(ModelSpecError, match="plain folder names"):
        run_fetch(volume_values("vol"), [f"name=m,uri={uri}"], tmp_path)


def test_a_missing_folder_names_what_the_volume_holds(volumes: Path, tmp_path: Path) -> None:
    run = run_fetch(volume_values("volume-models"), ["name=m,uri=model://volume-models/my_modle"], tmp_path)
    error = run.result("m").error or ""
    assert "'my_modle' in volume repository 'volume-models': no such folder" in error
    assert "my_model/" in error  # the hint lists what is there


def test_a_folder_without_a_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "volumes" / "vol" / "notes").mkdir(parents=True)
    (tmp_path / "volumes" / "vol" / "notes" / "README").write_text("hello")
    run = run_fetch(volume_values("vol"), ["name=m,uri=model://vol/notes"], tmp_path)
    assert "holds no Triton model" in (run.result("m").error or "")


def test_an_unmounted_volume_is_a_clear_error(tmp_path: Path) -> None:
    run = run_fetch(volume_values("vol"), ["name=m,uri=model://vol/m"], tmp_path)
    error = run.result("m").error or ""
    assert "volume repository 'vol' (claim 'vol-claim') is not mounted at" in error
    assert "model 'm'" not in error  # whoever reports the failure names the model, once


def test_copy_mode_honours_the_size_limit(volumes: Path, tmp_path: Path) -> None:
    run = run_fetch(volume_values("volume-models"), ["name=my_model,uri=model://volume-models/my_model"], tmp_path,
                    volume_mode="copy", max_model_bytes=10)
    assert "bytes, more than the limit of 10 bytes" in (run.result("my_model").error or "")
    assert not os.path.lexists(run.dest / "my_model")


def test_locate_model_errors_are_typed(tmp_path: Path) -> None:
    from fetcher.lease.values import VolumeRepository
    from fetcher.sources.volume import locate_model

    volume = VolumeRepository("vol", "claim")
    (tmp_path / "vol").mkdir()
    (tmp_path / "vol" / "file").write_text("x")
    with pytest.raises(ModelLayoutError, match="is a file"):
        locate_model(tmp_path, volume, "file")
    write_model(tmp_path / "outside", "outside")
    (tmp_path / "vol" / "up").symlink_to("..")
    with pytest.raises(ResolutionError, match="outside the volume"):
        locate_model(tmp_path, volume, "up/outside")


def _cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fetcher", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


def test_cli_fetch_and_explain_a_volume_model(volumes: Path, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        **volume_values("volume-models"),
        "lease": {"models": ["name=my_model,uri=model://volume-models/my_model"]},
    }))
    explained = _cli("explain", "--values", values, "--volumes-dir", volumes, "--json", cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    assert json.loads(explained.stdout) == [{
        "name": "my_model",
        "uri": "model://volume-models/my_model",
        "source": "volume",
        "repository": "volume-models",
        "location": str(volumes / "volume-models" / "my_model"),
        "secret": None,
        "reason": f"volume claim 'volume-models-claim' mounted at {volumes / 'volume-models'}; linked into the "
                  "repository (copied instead when its config.pbtxt names the model differently)",
    }]
    dest = tmp_path / "models"
    fetched = _cli("fetch", "--values", values, "--volumes-dir", volumes, "--dest", dest,
                   "--termination-log", tmp_path / "termination", cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    assert (dest / "my_model").is_symlink()
    copied = _cli("fetch", "--values", values, "--volumes-dir", volumes, "--dest", dest, "--volume-mode", "copy",
                  "--termination-log", tmp_path / "termination", cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert (dest / "my_model").is_dir() and not (dest / "my_model").is_symlink()
    assert sorted(p.name for p in dest.iterdir()) == ["my_model"]

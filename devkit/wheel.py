"""The fetcher as users install it: the wheel built from this checkout, in a virtual environment of its own.

The tests run ``model-fetcher`` from a ``FetcherInstall``: the checkout's own environment (an
editable install) or the built wheel installed, not editable, into a fresh virtual environment, the
way Dockerfile.fetcher installs it. A process of the wheel lane is started with the environment's
``bin`` first on PATH, no PYTHONPATH and a working folder outside the checkout, so a module the
wheel left out fails there as it fails in the image.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from devkit.pod import LocalPod

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "fetcher"
# Variables that could make the checkout importable whatever the environment holds.
_IMPORT_PATH_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE")


@dataclass(frozen=True)
class FetcherInstall:
    """One environment that provides ``model-fetcher``."""

    lane: str  # "checkout" or "wheel"
    prefix: Path  # the virtual environment's root
    wheel: Path | None = None  # what the wheel lane installed

    @property
    def bin_dir(self) -> Path:
        return self.prefix / "bin"

    @property
    def python(self) -> Path:
        return self.bin_dir / "python"

    def argv(self, *args: str | Path) -> list[str]:
        return [str(self.bin_dir / "model-fetcher"), *(str(a) for a in args)]

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default this process's environment) without import paths, this ``bin`` first on PATH."""
        env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _IMPORT_PATH_VARIABLES}
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env['PATH']}" if env.get("PATH") else str(self.bin_dir)
        return env

    def imported_from(self, module: str, *, cwd: Path) -> Path:
        """Where this environment's python imports ``module`` from, started in ``cwd``."""
        result = subprocess.run([str(self.python), "-c", f"import {module}; print({module}.__file__)"],
                                cwd=cwd, env=self.environment(), capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"{self.lane}: cannot import {module}: {result.stderr.strip()[-2000:]}")
        return Path(result.stdout.strip())

    def prepare(self, folder: Path) -> None:
        """Make ``folder`` usable by this install's processes (nothing to do for a local one)."""

    def container_argv(self, pod: "LocalPod", container: dict[str, Any], command: Sequence[str],
                       args: Sequence[str]) -> list[str] | None:
        """The process that runs ``container`` of a local pod, or None to run its command here."""
        return None


def checkout_install() -> FetcherInstall:
    """The environment these tests run in (``make venv``: an editable install of the checkout)."""
    return FetcherInstall(lane="checkout", prefix=Path(sys.prefix))


def checkout_packages() -> list[str]:
    """Every package of the checkout's fetcher/, as its ``__init__.py`` path inside a wheel."""
    return sorted(str(PurePosixPath(*p.relative_to(ROOT).parts)) for p in (ROOT / PACKAGE).rglob("__init__.py"))


def build_sources() -> list[str]:
    """What Dockerfile.fetcher copies from the checkout into its build (its COPY lines without --from)."""
    sources: list[str] = []
    for line in re.findall(r"^COPY\s+(?!--from)(.+)$", (ROOT / "Dockerfile.fetcher").read_text(), re.M):
        sources.extend(part.rstrip("/") for part in line.split()[:-1])
    return sources


def stage_build_sources(dest: Path) -> Path:
    """Copy exactly what the image's build copies into ``dest``; returns ``dest``.

    Building from this copy, not the checkout, means a package the configuration no longer finds
    cannot reach the wheel from what an earlier build left in the checkout's build/ folder.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for name in build_sources():
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, dest / name)
    return dest


def build_wheel(dest: Path) -> Path:
    """``pip wheel --no-deps`` of what the image's build copies (see ``stage_build_sources``); the wheel's path."""
    source = stage_build_sources(dest / "src")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dest),
                             str(source)], cwd=dest, capture_output=True, text=True, timeout=300)
    wheels = sorted(dest.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise RuntimeError(f"pip wheel failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return wheels[0]


def wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def install_wheel(wheel: Path, venv: Path) -> FetcherInstall:
    """A fresh virtual environment (not this one's) with ``wheel`` and its dependencies installed."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120,
                   env=FetcherInstall("wheel", venv).environment())
    install = FetcherInstall(lane="wheel", prefix=venv, wheel=wheel)
    # This environment's pip installs into the new one (--python): no copy of pip is needed there.
    result = subprocess.run([sys.executable, "-m", "pip", "--python", str(install.python), "install", "--quiet",
                             "--no-warn-script-location", str(wheel)], cwd=venv, env=install.environment(),
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"pip install {wheel.name} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return install


def wheel_install(work: Path) -> FetcherInstall:
    """Build the wheel into ``work`` and install it into ``work/venv``; checked to import from there only."""
    install = install_wheel(build_wheel(work / "build"), work / "venv")
    location = install.imported_from(PACKAGE, cwd=work)
    if install.prefix not in location.parents:
        raise RuntimeError(f"the wheel lane imports {PACKAGE} from {location}, not from {install.prefix}")
    return install

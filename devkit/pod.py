"""One pod of the rendered Deployment, run on this machine the way its containers would run.

Each container's process gets a private mount namespace (`unshare --mount --propagation private`),
in which a small shell script bind-mounts a local folder at every `volumeMount.mountPath` of the
rendered container (read-only where the mount says so) and a local file at its
`terminationMessagePath`, then execs the container's command and args with the container's
environment. Nothing is translated, so a path in the chart that the program does not follow fails
here as it would in the cluster.

The pod's volumes become local folders, one per volume, shared by the containers that mount it:
- emptyDir (and a generic ephemeral claim): an empty folder; `medium: Memory` is a tmpfs;
- configMap: its data written as files (`items` honoured); the release's own ConfigMaps come from
  the render, others are given;
- secret: the given secret's keys as files; an absent `optional` secret is an empty folder (as the
  kubelet does), an absent required one stops the pod from starting (`PodError`);
- persistentVolumeClaim: a local folder standing in for the claim.

A container's env may take a value from a given secret (`valueFrom.secretKeyRef`), and `$(VAR)` in
its command and args is replaced by the value of a variable of its env, as the kubelet does.

Without the privilege for mount namespaces (not root, or `unshare` refused), the fallback mode
`rewrite` runs the same command and args with every path inside a mount rewritten to a local tree
of links; `describe_mode()` says which mode is in use.

A mount point that does not exist on this machine (`/models`, `/etc/model-fetcher`,
`/dev/termination-log`, ...) is created empty before the namespace is entered, as a container
runtime creates it in the image's root, and removed again on `close()` when no other local pod is
running.
"""

from __future__ import annotations

import fcntl
import os
import selectors
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Sequence

from devkit.processes import stop_process
from devkit.wheel import FetcherInstall, checkout_install

NAMESPACE = "namespace"
REWRITE = "rewrite"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
# The image's PATH, with the virtual environment's scripts first: the fetcher image is not
# available here, so its `model-fetcher` is the one of the pod's FetcherInstall (default: the
# environment of this interpreter; the wheel lane's: the built wheel's).
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_LOCK_FILE = Path(tempfile.gettempdir()) / "triton-lease-local-pod.lock"
# Mount points a pod could not remove (another was running): the next pod that can, removes them.
_LEFT_FILE = Path(tempfile.gettempdir()) / "triton-lease-local-pod.left"


class PodError(RuntimeError):
    """The pod could not start as specified (what the kubelet would report as an event)."""


@dataclass(frozen=True)
class Mount:
    path: str  # inside the container
    source: Path  # local folder or file
    read_only: bool
    volume: str  # the pod volume's name, or "" for the termination message file
    tmpfs_size: str | None = None  # an in-memory emptyDir: mount a tmpfs (size option) instead


@dataclass
class ContainerRun:
    name: str
    returncode: int
    output: str
    termination_message: str
    seconds: float


@lru_cache(maxsize=1)
def namespaces_available() -> bool:
    """True when this process may give a child a private mount namespace and bind-mount in it."""
    if os.environ.get("LOCAL_POD_MODE") == REWRITE:
        return False
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("mount"):
        return False
    with tempfile.TemporaryDirectory(prefix="local-pod-probe-") as probe:
        try:
            result = subprocess.run(
                [shutil.which("unshare"), "--mount", "--propagation", "private", "--",
                 "/bin/sh", "-c", f"mount --bind {shlex.quote(probe)} {shlex.quote(probe)}"],
                capture_output=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return False
    return result.returncode == 0


def default_mode() -> str:
    return NAMESPACE if namespaces_available() else REWRITE


def describe_mode(mode: str) -> str:
    if mode == NAMESPACE:
        return ("private mount namespace per container (unshare --mount --propagation private); "
                "each volumeMount bind-mounted at its mountPath")
    return ("FALLBACK: mount namespaces are not permitted here, so every path under a mountPath in "
            "the command's arguments is rewritten to a local tree of links")


def memory_quantity_to_tmpfs(quantity: Any) -> str | None:
    """'1Gi' -> '1g' (tmpfs's size option); None when it cannot be said simply."""
    text = str(quantity or "").strip()
    for suffix, unit in (("Ki", "k"), ("Mi", "m"), ("Gi", "g")):
        if text.endswith(suffix) and text[: -len(suffix)].isdigit():
            return text[: -len(suffix)] + unit
    return text if text.isdigit() else None


def _paths_the_process_needs(install: FetcherInstall) -> list[str]:
    """This checkout and the Python environments the rendered command runs from."""
    checkout = Path(__file__).resolve().parent.parent
    paths = {str(checkout), sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parent.parent),
             str(install.prefix)}
    # Outermost first, and none inside another: binding a parent back restores its children.
    ordered = sorted(paths, key=lambda p: len(PurePosixPath(p).parts))
    return [p for i, p in enumerate(ordered) if not any(_within(p, q) for q in ordered[:i])]


def _within(path: str, parent: str) -> bool:
    return PurePosixPath(path) == PurePosixPath(parent) or PurePosixPath(parent) in PurePosixPath(path).parents


class LocalPod:
    """The pod spec's volumes as local folders, and its containers run against them.

    config_maps: {name: {key: text}} (the release's own come from the render);
    secrets: {secretName: {key: text}}; claims: {claimName: local folder};
    install: where the image's `model-fetcher` comes from (default: this interpreter's environment).
    """

    def __init__(self, pod_spec: dict[str, Any], root: Path, *, config_maps: dict[str, dict[str, str]] | None = None,
                 secrets: dict[str, dict[str, str]] | None = None, claims: dict[str, Path] | None = None,
                 mode: str | None = None, install: FetcherInstall | None = None) -> None:
        self.spec = pod_spec
        self.install = install or checkout_install()
        self.root = root
        self.mode = mode or default_mode()
        self.config_maps = dict(config_maps or {})
        self.secrets = dict(secrets or {})
        self.claims = {name: Path(folder) for name, folder in (claims or {}).items()}
        self._created: list[Path] = []
        self.argv: dict[str, list[str]] = {}  # container name -> the process last started for it
        self.in_image: set[str] = set()  # containers run from a real image (install.container_argv)
        self._lock: Any = None
        self.uid = str(uuid.uuid4())  # metadata.uid, for env from the downward API
        self.volumes: dict[str, tuple[Path, str | None]] = {}
        for volume in pod_spec.get("volumes", []):
            self.volumes[volume["name"]] = self._materialize(volume)

    # volumes ------------------------------------------------------------------------------------

    def _materialize(self, volume: dict[str, Any]) -> tuple[Path, str | None]:
        name = volume["name"]
        folder = self.root / "volumes" / name
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            if claim not in self.claims:
                raise PodError(f'volume "{name}": persistentvolumeclaim "{claim}" not found')
            return self.claims[claim], None
        folder.mkdir(parents=True, exist_ok=True)
        if "emptyDir" in volume:
            empty = volume["emptyDir"] or {}
            if empty.get("medium") == "Memory":
                return folder, memory_quantity_to_tmpfs(empty.get("sizeLimit")) or ""
            return folder, None
        if "ephemeral" in volume:
            return folder, None
        for kind, name_key, known, what in (("configMap", "name", self.config_maps, "configmap"),
                                            ("secret", "secretName", self.secrets, "secret")):
            if kind in volume:
                source = volume[kind]
                data = known.get(source[name_key])
                if data is None and not source.get("optional"):
                    raise PodError(f'volume "{name}": {what} "{source[name_key]}" not found')
                self._write_items(folder, data or {}, source.get("items"), what=f'{what} "{source[name_key]}"')
                return folder, None
        raise PodError(f'volume "{name}": this local pod does not support {sorted(set(volume) - {"name"})}')

    @staticmethod
    def _write_items(folder: Path, data: dict[str, str], items: list[dict[str, str]] | None, *, what: str) -> None:
        for item in items or [{"key": key, "path": key} for key in data]:
            if item["key"] not in data:
                if data:
                    raise PodError(f'{what} has no key "{item["key"]}"')
                continue
            target = folder / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[item["key"]])

    # mounts -------------------------------------------------------------------------------------

    def termination_file(self, container: dict[str, Any]) -> Path:
        return self.root / "termination" / container["name"]

    def mounts(self, container: dict[str, Any]) -> list[Mount]:
        """The container's mounts, in the order they must be made."""
        mounts = []
        volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                raise PodError(f'container "{container["name"]}": volumeMount "{mount["name"]}" names no pod volume')
            source, tmpfs = self.volumes[mount["name"]]
            if mount.get("subPath"):
                source = source / mount["subPath"]
            read_only = bool(mount.get("readOnly")) or bool(
                (volumes[mount["name"]].get("persistentVolumeClaim") or {}).get("readOnly"))
            mounts.append(Mount(path=mount["mountPath"], source=source, read_only=read_only,
                                volume=mount["name"], tmpfs_size=tmpfs))
        termination = self.termination_file(container)
        termination.parent.mkdir(parents=True, exist_ok=True)
        termination.touch()
        mounts.append(Mount(path=container.get("terminationMessagePath", DEFAULT_TERMINATION_PATH),
                            source=termination, read_only=False, volume=""))
        # Parents before children (as the kubelet does); a mount that would hide the local folders
        # still to be mounted (a mountPath of /tmp when they live under /tmp) goes last.
        sources = [str(m.source.resolve()) for m in mounts]

        def hides_sources(mount: Mount) -> bool:
            return any(_within(source, mount.path) for source in sources)

        return sorted(mounts, key=lambda m: (hides_sources(m), len(PurePosixPath(m.path).parts), m.path))

    def local_path(self, container: dict[str, Any], pod_path: str) -> Path:
        """Where a path inside the container is on this machine (through its deepest mount)."""
        best = None
        for mount in self.mounts(container):
            if _within(pod_path, mount.path) and (best is None or len(mount.path) > len(best.path)):
                best = mount
        if best is None:
            raise ValueError(f"{pod_path} is on no volume of container {container['name']}")
        relative = PurePosixPath(pod_path).relative_to(best.path)
        return best.source / relative if str(relative) != "." else best.source

    def script(self, container: dict[str, Any]) -> str:
        """The shell script that makes the container's mounts, then execs "$@".

        A mount may hide folders the local process itself needs: a /tmp emptyDir hides this
        project's virtual environment when the checkout lives under /tmp. Those are bound to a
        holding place first and bound back at their own paths after the container's mounts.
        """
        mounts = self.mounts(container)
        hidden = [path for path in _paths_the_process_needs(self.install) if any(_within(path, m.path) for m in mounts)]
        lines = ["#!/bin/sh", f"# mounts of container {container['name']}", "set -eu"]
        hold = self._holding_folder(mounts, len(hidden)) if hidden else None
        for index, path in enumerate(hidden):
            lines.append(f"mount --bind {shlex.quote(path)} {hold}/{index}")
        for mount in mounts:
            target = shlex.quote(mount.path)
            if mount.tmpfs_size is not None:
                size = f"-o size={mount.tmpfs_size} " if mount.tmpfs_size else ""
                lines.append(f"mount -t tmpfs {size}tmpfs {target}")
                continue
            lines.append(f"mount --bind {shlex.quote(str(mount.source))} {target}")
            if mount.read_only:
                lines.append(f"mount -o remount,bind,ro {target}")
        for index, path in enumerate(hidden):
            lines.append(f"mkdir -p {shlex.quote(path)} && mount --bind {hold}/{index} {shlex.quote(path)}")
        lines.append('exec "$@"')
        return "\n".join(lines) + "\n"

    def _holding_folder(self, mounts: Sequence[Mount], count: int) -> str:
        """A new folder outside every mountPath with ``count`` mount points (recorded, removed by close())."""
        for base in ("/run", "/var/tmp", "/root", "/"):
            if os.path.isdir(base) and not any(_within(base, m.path) for m in mounts):
                folder = Path(tempfile.mkdtemp(prefix="local-pod-hold-", dir=base))
                self._created.append(folder)
                for index in range(count):
                    (folder / str(index)).mkdir()
                    self._created.append(folder / str(index))
                return shlex.quote(str(folder))
        raise PodError("no folder outside the container's mounts to hold the local environment in")

    def _prepare_mount_points(self, mounts: Sequence[Mount]) -> None:
        """Create the mount points that do not exist here (recorded, and removed by close())."""
        if self._lock is None:
            self._lock = open(_LOCK_FILE, "a")
            fcntl.flock(self._lock, fcntl.LOCK_SH)
        for mount in mounts:
            target = Path(mount.path)
            missing = [p for p in reversed([target, *target.parents]) if not os.path.lexists(p)]
            for path in missing:
                if path == target and mount.source.is_file():
                    path.touch()
                else:
                    path.mkdir()
                self._created.append(path)

    def _rewrite_tree(self, container: dict[str, Any]) -> tuple[Path, list[Mount]]:
        """For the fallback: <root>/fs/<mountPath> links to each mount's local folder."""
        tree = self.root / "fs" / container["name"]
        mounts = self.mounts(container)
        for mount in mounts:
            link = tree / mount.path.lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            if not os.path.lexists(link):
                link.symlink_to(mount.source)
        return tree, mounts

    def _rewrite(self, value: str, tree: Path, mounts: Sequence[Mount]) -> str:
        flag, eq, path = value.partition("=") if value.startswith("-") else ("", "", value)
        if not path.startswith("/"):
            return value
        if any(_within(path, m.path) or _within(m.path, path) for m in mounts):
            return f"{flag}{eq}{tree}{path}"
        return value

    # running ------------------------------------------------------------------------------------

    def environment(self, container: dict[str, Any], base: dict[str, str] | None = None) -> dict[str, str]:
        """The image's environment (``base``, default a plain PATH) with the container's env on top."""
        env = dict(base) if base is not None else {"PATH": f"{self.install.bin_dir}:{SYSTEM_PATH}"}
        env.update(self.container_env(container))
        return env

    def container_env(self, container: dict[str, Any]) -> dict[str, str]:
        """The variables of the container's own env (values and secretKeyRefs)."""
        env: dict[str, str] = {}
        for item in container.get("env", []) or []:
            if "value" in item:
                env[item["name"]] = expand_variables(str(item["value"]), env)
                continue
            if ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") == "metadata.uid":
                env[item["name"]] = self.uid  # the downward API
                continue
            ref = (item.get("valueFrom") or {}).get("secretKeyRef")
            if ref is None:
                raise PodError(f'container "{container["name"]}": env {item["name"]}: only value, '
                               "valueFrom.secretKeyRef and fieldRef metadata.uid are supported here")
            data = self.secrets.get(ref["name"])
            if data is None or ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise PodError(f'container "{container["name"]}": env {item["name"]}: secret "{ref["name"]}" '
                               f'has no key "{ref["key"]}"' if data is not None else
                               f'container "{container["name"]}": env {item["name"]}: secret "{ref["name"]}" not found')
            env[item["name"]] = data[ref["key"]]
        return env

    def command_line(self, container: dict[str, Any], *, command: Sequence[str] | None = None,
                     args: Sequence[str] | None = None) -> list[str]:
        """The process to start for ``container`` (rendered command and args unless replaced)."""
        command = list(command if command is not None else container.get("command", []))
        args = list(args if args is not None else container.get("args", []))
        if not command:
            raise PodError(f'container "{container["name"]}" has no command (the image entrypoint is not known here)')
        self.mounts(container)
        self.termination_file(container).write_bytes(b"")  # a fresh start of the container
        in_image = self.install.container_argv(self, container, command, args)
        if in_image is not None:
            self.in_image.add(container["name"])
            return in_image
        self.in_image.discard(container["name"])
        if self.mode == NAMESPACE:
            mounts = self.mounts(container)
            self._prepare_mount_points(mounts)
            script = self.root / "scripts" / f"{container['name']}.sh"
            script.parent.mkdir(parents=True, exist_ok=True)
            script.write_text(self.script(container))
            return [shutil.which("unshare") or "unshare", "--mount", "--propagation", "private", "--",
                    "/bin/sh", str(script), *command, *args]
        tree, mounts = self._rewrite_tree(container)
        return [self._rewrite(command[0], tree, mounts), *[self._rewrite(a, tree, mounts) for a in command[1:]],
                *[self._rewrite(a, tree, mounts) for a in args]]

    def start(self, container: dict[str, Any], *, command: Sequence[str] | None = None,
              args: Sequence[str] | None = None, env: dict[str, str] | None = None,
              stdout: Any = subprocess.PIPE) -> subprocess.Popen[bytes]:
        variables = self.container_env(container)
        command = [expand_variables(a, variables) for a in (command if command is not None else container.get("command", []))]
        args = [expand_variables(a, variables) for a in (args if args is not None else container.get("args", []))]
        argv = self.command_line(container, command=command, args=args)
        if container["name"] in self.in_image:  # the container engine's own environment; the container's is in argv
            environment = env if env is not None else self.install.environment()
        else:
            environment = env if env is not None else self.environment(container)
        if self.mode == REWRITE and container["name"] not in self.in_image:  # the command on the container's PATH
            argv[0] = shutil.which(argv[0], path=environment.get("PATH")) or argv[0]
        self.argv[container["name"]] = argv
        return subprocess.Popen(argv, stdout=stdout, stderr=subprocess.STDOUT, env=environment,
                                cwd=self.root, start_new_session=True)

    def run(self, container: dict[str, Any], *, timeout: float, on_line: Callable[[str], None] | None = None,
            **start: Any) -> ContainerRun:
        """Run a container to completion (an init container), streaming its output to ``on_line``."""
        started = time.monotonic()
        process = self.start(container, **start)
        assert process.stdout is not None
        lines: list[str] = []
        deadline = started + timeout
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        buffered = b""
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f'container "{container["name"]}" ran longer than {timeout:.0f}s')
                if not selector.select(timeout=min(remaining, 1.0)):
                    continue
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    break
                buffered += chunk
                *complete, buffered = buffered.split(b"\n")
                for raw in complete:
                    line = raw.decode(errors="replace")
                    lines.append(line)
                    if on_line:
                        on_line(line)
            if buffered:
                lines.append(buffered.decode(errors="replace"))
                if on_line:
                    on_line(lines[-1])
            returncode = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            selector.close()
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            process.stdout.close()
        return ContainerRun(name=container["name"], returncode=returncode, output="\n".join(lines),
                            termination_message=self.termination_file(container).read_text(errors="replace"),
                            seconds=time.monotonic() - started)

    def serve_triton(self, container: dict[str, Any], log_path: Path, *, ready_timeout: float = 120.0,
                     http_port: int | None = None) -> Any:
        """Start the Triton container (see ``triton_container``); a context manager of RunningTriton."""
        return triton_container(self, container, log_path, ready_timeout=ready_timeout, http_port=http_port)

    def close(self) -> None:
        """Remove the mount points this pod created, unless another local pod is running."""
        if self._lock is None:
            return
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            # Another local pod uses them: leave the empty mount points for the next pod to remove.
            with open(_LEFT_FILE, "a") as left:
                left.write("".join(f"{path}\n" for path in self._created))
        else:
            try:
                left_over = [Path(line) for line in _LEFT_FILE.read_text().splitlines() if line]
            except OSError:
                left_over = []
            # Deepest first: a folder is empty only once the mount points inside it are gone.
            for path in sorted({*self._created, *left_over}, key=lambda p: len(p.parts), reverse=True):
                try:
                    if path.is_dir() and not path.is_symlink():
                        path.rmdir()
                    elif path.stat().st_size == 0:
                        path.unlink()
                except OSError:
                    pass
            _LEFT_FILE.unlink(missing_ok=True)
        finally:
            self._created.clear()
            self._lock.close()
            self._lock = None

    def __enter__(self) -> "LocalPod":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def expand_variables(text: str, variables: dict[str, str]) -> str:
    """The kubelet's `$(VAR)` expansion: a defined variable is replaced, `$$` is a literal `$`,
    anything else stays as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("$(", i):
            end = text.find(")", i + 2)
            if end != -1 and text[i + 2:end] in variables:
                out.append(variables[text[i + 2:end]])
                i = end + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


# Triton ------------------------------------------------------------------------------------------

TRITON_PORT_FLAGS = ("--http-port", "--grpc-port", "--metrics-port")


def adapt_triton_args(args: Sequence[str], backends: Path, *,
                      http_port: int | None = None) -> tuple[list[str], dict[str, int]]:
    """The rendered Triton arguments, adapted to this machine: free loopback ports (or the given
    HTTP port) instead of the pod's, and the local install's backend directory. Everything else
    (``--model-repository``, extra arguments) is kept as rendered. Returns (arguments, {flag: port})."""
    from devkit.ports import free_port

    adapted: list[str] = []
    ports: dict[str, int] = {}
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag in TRITON_PORT_FLAGS and "=" in arg:
            ports[flag] = http_port if flag == "--http-port" and http_port else free_port()
            adapted.append(f"{flag}={ports[flag]}")
        else:
            adapted.append(arg)
    for flag in TRITON_PORT_FLAGS:
        if flag not in ports:
            ports[flag] = free_port()
            adapted.append(f"{flag}={ports[flag]}")
    adapted += ["--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
                f"--backend-directory={backends}"]
    return adapted, ports


class triton_container:  # noqa: N801 - used like a function: with triton_container(...) as triton
    """Run the rendered Triton container in the pod: its args (adapted by ``adapt_triton_args``),
    its env on top of the local Triton's, its mounts. The image's ``tritonserver`` is the binary of
    the nvidia-pytriton wheel. Waits until Triton reports ready; stops it on exit."""

    def __init__(self, pod: LocalPod, container: dict[str, Any], log_path: Path, *, ready_timeout: float,
                 http_port: int | None = None) -> None:
        self.pod, self.container, self.log_path, self.ready_timeout = pod, container, log_path, ready_timeout
        self.http_port = http_port
        self.process: subprocess.Popen[bytes] | None = None
        self.args: list[str] = []

    def __enter__(self) -> Any:
        from devkit.triton import RunningTriton, TritonInstall

        install = TritonInstall.find()
        self.args, ports = adapt_triton_args(self.container.get("args", []), install.backends, http_port=self.http_port)
        env = self.pod.environment(self.container, base=install.environment())
        command = self.container.get("command", ["tritonserver"])
        if command == ["tritonserver"]:
            command = [str(install.binary)]
        else:  # a rendered wrapper (the cache's lease lock) that execs tritonserver: found on PATH
            env["PATH"] = f"{install.binary.parent}:{env.get('PATH', SYSTEM_PATH)}"
        with open(self.log_path, "wb") as log:
            self.process = self.pod.start(self.container, command=command, args=self.args, env=env, stdout=log)
        triton = RunningTriton(process=self.process, http_url=f"http://127.0.0.1:{ports['--http-port']}",
                               log_path=self.log_path, grpc_address=f"127.0.0.1:{ports['--grpc-port']}")
        try:
            triton.wait_ready(self.ready_timeout)
        except BaseException:
            self.__exit__()
            raise
        return triton

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop_process(self.process)

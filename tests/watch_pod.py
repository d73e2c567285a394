"""A sidecar-mode pod on this machine: ``model-fetcher watch`` beside the real Triton in explicit mode.

``model-fetcher`` comes from the pod's ``FetcherInstall``: the checkout's environment, the built
wheel's (started outside the checkout without PYTHONPATH) or the image's (devkit/image.py). As in
the chart's pod, the fetcher reads the lease from a ConfigMap-style folder (updated by a
``..data`` swap), runs first, and Triton starts once the fetcher's status says ready, with
``--model-control-mode=explicit --load-model=*`` on the port the fetcher calls, its repository API
restricted to requests that carry the model-control key the sidecar reads from a file.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml
from prometheus_client.parser import text_string_to_metric_families

from devkit.configmap import ConfigMapDir
from devkit.https_server import RunningServer
from devkit.ports import free_port
from devkit.processes import stop_process
from devkit.triton import RunningTriton, run_triton, wait_until
from devkit.wheel import FetcherInstall

TRITON_ARGS = ["--model-control-mode=explicit", "--load-model=*", "--strict-readiness=false"]  # as the chart
# As the chart's defaults: these API groups demand the header, whose value the sidecar reads from a file.
MODEL_CONTROL_HEADER = "model-control-key"
RESTRICTED_APIS = "model-repository,trace,logging"


def restricted_args(value: str) -> list[str]:
    return [f"--http-restricted-api={RESTRICTED_APIS}:{MODEL_CONTROL_HEADER}={value}",
            f"--grpc-restricted-protocol={RESTRICTED_APIS}:{MODEL_CONTROL_HEADER}={value}"]


@dataclass
class WatchPod:
    tmp: Path
    server: RunningServer
    configmap: ConfigMapDir
    triton_port: int
    install: FetcherInstall
    model_control_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    metrics_port: int = field(default_factory=free_port)
    stack: ExitStack = field(default_factory=ExitStack)
    process: subprocess.Popen[bytes] | None = None
    triton: RunningTriton | None = None

    @property
    def repository(self) -> Path:
        return self.tmp / "models" / "repository"

    @property
    def status_file(self) -> Path:
        return self.tmp / "fetcher-tmp" / "status.json"

    @property
    def log_path(self) -> Path:
        return self.tmp / "watch.log"

    @property
    def key_file(self) -> Path:
        """The model-control Secret's key as the sidecar's mount holds it."""
        path = self.tmp / "model-control" / "key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.model_control_key)
        return path

    def lease(self, models: dict[str, str]) -> None:
        """Write the lease (model name -> file served by the test server), as a ConfigMap update."""
        self.configmap.update({"values.yaml": lease_values(self.server, models)})

    def start_watch(self, *extra: str) -> None:
        args = self.install.argv(
                "watch",
                "--values", str(self.configmap.path("values.yaml")),
                "--dest", str(self.repository),
                "--termination-log", str(self.tmp / "termination-log"),
                "--triton-url", f"http://127.0.0.1:{self.triton_port}",
                "--poll-interval", "0.2",
                "--retry-interval", "600",
                "--triton-timeout", "60",
                "--status-file", str(self.status_file),
                "--triton-auth-header", MODEL_CONTROL_HEADER,
                "--triton-auth-file", str(self.key_file),
                "--metrics-port", str(self.metrics_port), "--metrics-address", "127.0.0.1",
                *extra)
        env = {**self.install.environment(), "PYTHONUNBUFFERED": "1"}
        self.install.prepare(self.tmp)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(args, cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT, env=env)

    def status_command(self, *extra: str) -> tuple[int, str]:
        """``model-fetcher status`` (the sidecar's startup probe) on this pod's status file: exit status, output."""
        result = subprocess.run(self.install.argv("status", "--status-file", self.status_file, *extra),
                                cwd=self.tmp, env=self.install.environment(), capture_output=True, text=True,
                                timeout=60)
        return result.returncode, result.stdout + result.stderr

    def start_triton(self) -> RunningTriton:
        self.triton = self.stack.enter_context(
            run_triton(self.repository, self.tmp / "triton.log", http_port=self.triton_port,
                       extra_args=[*TRITON_ARGS, *restricted_args(self.model_control_key)]))
        return self.triton

    def metrics(self) -> dict[str, float]:
        """The samples the sidecar serves at /metrics, keyed ``name{label="value",...}`` (labels sorted)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as response:
            assert response.headers.get("Content-Type", "").startswith("text/plain")
            text = response.read().decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return samples

    def status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
        def check() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"watch exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            return predicate()

        try:
            wait_until(check, timeout=timeout, what=what)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\nwatch log:\n{self.log()[-3000:]}\nstatus: {self.status()}") from None

    def wait_synced(self, models: list[str], what: str) -> None:
        """Wait until the last sync happened after the lease's current content and installed ``models``."""
        self.wait(lambda: self.status().get("models") == sorted(models), what)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop_watch(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def close(self) -> None:
        if self.process is not None:
            # SIGTERM first: the image lane's podman passes it on to the container, a kill would not.
            stop_process(self.process, grace=10.0)
        self.stack.close()


def lease_values(server: RunningServer, models: dict[str, str]) -> str:
    return yaml.safe_dump({"lease": {"models": [f"name={name},uri={server.url(file)}" for name, file in models.items()]}})


def new_pod(tmp: Path, server: RunningServer, models: dict[str, str], install: FetcherInstall) -> WatchPod:
    configmap = ConfigMapDir(tmp / "config", {"values.yaml": lease_values(server, models)})
    return WatchPod(tmp=tmp, server=server, configmap=configmap, triton_port=free_port(), install=install)

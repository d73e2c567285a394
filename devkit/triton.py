"""The real Triton Inference Server, from the nvidia-pytriton wheel, run on loopback.

Only the python backend ships in that wheel, and it runs on the CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from devkit.ports import free_port
from devkit.processes import stop_process


@dataclass(frozen=True)
class TritonInstall:
    binary: Path
    backends: Path
    library_path: str

    @classmethod
    def find(cls) -> "TritonInstall":
        import pytriton  # the wheel that carries the server

        base = Path(pytriton.__file__).parent / "tritonserver"
        site = Path(pytriton.__file__).parent.parent
        stub = base / "backends" / "python" / "triton_python_backend_stub"
        if not stub.exists():
            version = f"{sys.version_info.major}.{sys.version_info.minor}"
            shutil.copy2(base / "python_backend_stubs" / version / "triton_python_backend_stub", stub)
        libs = [str(site / "nvidia_pytriton.libs"), sysconfig.get_config_var("LIBDIR") or ""]
        return cls(binary=base / "bin" / "tritonserver", backends=base / "backends", library_path=":".join(libs))

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = self.library_path + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
        # The python backend's stub imports numpy from the first python on PATH.
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        return env


@dataclass
class RunningTriton:
    process: subprocess.Popen[bytes]
    http_url: str
    log_path: Path
    grpc_address: str = ""

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.http_url + path, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def post(self, path: str, body: dict | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        data = json.dumps(body or {}).encode()
        request = urllib.request.Request(self.http_url + path, data=data, method="POST",
                                         headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def model_ready(self, name: str) -> bool:
        return self.get(f"/v2/models/{name}/ready")[0] == 200

    def infer(self, name: str, values: Sequence[float]) -> list[float]:
        body = {"inputs": [{"name": "INPUT0", "shape": [len(values)], "datatype": "FP32", "data": list(values)}]}
        status, reply = self.post(f"/v2/models/{name}/infer", body)
        if status != 200:
            raise RuntimeError(f"inference on {name} failed with HTTP {status}: {reply[:300]!r}")
        return list(json.loads(reply)["outputs"][0]["data"])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float) -> None:
        """Wait for /v2/health/ready; raise with the log's tail if the server exits first."""

        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"tritonserver exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                return self.get("/v2/health/ready")[0] == 200
            except OSError:
                return False

        wait_until(ready, timeout=timeout, what="Triton to be ready")


def wait_until(predicate, *, timeout: float, interval: float = 0.2, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what}")


@contextmanager
def run_triton(model_repository: Path, log_path: Path, *, extra_args: Sequence[str] = (),
               ready_timeout: float = 90.0, wait_ready: bool = True,
               http_port: int | None = None) -> Iterator[RunningTriton]:
    """Start tritonserver on free loopback ports (or the given HTTP port); stop it on exit."""
    install = TritonInstall.find()
    http_port, grpc_port, metrics_port = http_port or free_port(), free_port(), free_port()
    args = [
        str(install.binary),
        f"--model-repository={model_repository}",
        f"--backend-directory={install.backends}",
        f"--http-port={http_port}",
        f"--grpc-port={grpc_port}",
        f"--metrics-port={metrics_port}",
        "--http-address=127.0.0.1",
        "--grpc-address=127.0.0.1",
        *extra_args,
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=install.environment())
    triton = RunningTriton(process=process, http_url=f"http://127.0.0.1:{http_port}", log_path=log_path,
                           grpc_address=f"127.0.0.1:{grpc_port}")
    try:
        if wait_ready:
            triton.wait_ready(ready_timeout)
        yield triton
    finally:
        stop_process(process)

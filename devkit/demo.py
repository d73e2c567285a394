"""`make demo`: the fetcher's main job on this machine, with no cluster.

Serves a sample model zip over HTTPS behind an Authorization secret, fetches it with
`model-fetcher fetch` exactly as a pod would (values file, mounted secret files), starts the real
Triton server on the result, and shows the model ready and answering an inference.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trustme
import yaml

from devkit.https_server import serve_files
from devkit.secrets import write_secret
from devkit.models import model_files, zip_model
from devkit.triton import run_triton

TOKEN = "Bearer demo-token"


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="model-fetcher-demo-") as scratch:
        work = Path(scratch)
        site, secrets, repository = work / "site", work / "secrets", work / "models" / "repository"
        site.mkdir()
        step("building a sample python-backend model and zipping it (files inside one top folder)")
        zip_model(site / "my_model.zip", model_files("my_model", addend=1.0), top_folder="my_model")

        ca = trustme.CA()
        ca_file = work / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(tls)
        write_secret(secrets, "ngc-model-pull", TOKEN)

        with serve_files(site, tls=tls, required_auth={"/": TOKEN}) as server:
            step(f"serving {server.url('my_model.zip')} over HTTPS; it answers 401 without the secret")
            values = work / "values.yaml"
            values.write_text(yaml.safe_dump({
                "server": {"modelRepositories": {"https": [{"secretName": "ngc-model-pull", "targetUri": "127.0.0.1"}]}},
                "lease": {"models": [f"name=my_model,uri={server.url('my_model.zip')}"]},
            }))
            common = ["--values", str(values), "--secrets-dir", str(secrets)]
            step("model-fetcher explain (which secret applies, and why)")
            subprocess.run([sys.executable, "-m", "fetcher", "explain", *common], check=True)
            step("model-fetcher fetch")
            fetch_started = time.monotonic()
            subprocess.run([sys.executable, "-m", "fetcher", "fetch", *common, "--dest", str(repository),
                            "--ca-bundle", str(ca_file), "--termination-log", str(work / "termination-log")], check=True)
            fetch_seconds = time.monotonic() - fetch_started

        installed = sorted(p.name for p in repository.iterdir())
        size = sum(p.stat().st_size for p in repository.rglob("*") if p.is_file())
        step(f"repository root holds: {', '.join(installed)}")
        step("starting Triton on the repository")
        with run_triton(repository, work / "triton.log") as triton:
            ready = triton.model_ready("my_model")
            step(f"my_model ready: {ready}")
            output = triton.infer("my_model", [1.0, 2.0, 3.0, 4.0])
            step(f"infer my_model [1, 2, 3, 4] -> {output}")
        ok = ready and output == [2.0, 3.0, 4.0, 5.0]
        print()
        print(f"models: {len(installed)}  source: https (with secret)  bytes installed: {size}  "
              f"fetch: {fetch_seconds:.2f}s  total: {time.monotonic() - started:.1f}s  result: {'OK' if ok else 'FAILED'}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""`make demo`: the whole product on this machine, with no cluster.

1. Builds three small python-backend models and puts each where one kind of repository keeps it:
   a zip on an HTTPS server that demands an Authorization secret, a folder under a parent folder in
   an S3 bucket (`rclone serve s3`, with keys, over HTTPS), and a folder standing in for a volume
   claim. One private CA (trustme) signs both servers.
2. Renders the chart with the real Helm engine: a demo lease naming the three models and values for
   the three repositories (an https secret with its targetUri, a volume claim, an S3 bucket with an
   endpoint and key secrets) and the CA as the fetcher's `caBundle` ConfigMap.
3. Runs the rendered pod here (devkit.pod): the init container's command, args and env exactly as
   rendered, in a private mount namespace where every volumeMount of the rendered spec is
   bind-mounted at its mountPath (emptyDir, the ConfigMap's files, each secret's files, the claim,
   the CA); then the Triton container's arguments (ports moved to free loopback ports) on the
   same emptyDir, mounted at the rendered path.
4. Shows each model ready and one inference per model, stops everything, prints a summary.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import trustme

from devkit.chart import Rendered, lint_chart, merge_values, render_chart
from devkit.https_server import RunningServer, serve_files
from devkit.models import model_files, write_model, zip_model
from devkit.pod import REWRITE, ContainerRun, LocalPod, describe_mode
from devkit.s3_server import TEST_ACCESS_KEY, TEST_SECRET_KEY, rclone_s3, write_bucket_files
from devkit.wheel import FetcherInstall

RELEASE = "demo"
NAMESPACE = "models"
LINT_KUBE_VERSION = "v1.25.0"  # the oldest Kubernetes the chart claims
TOKEN = "Bearer demo-token-0123456789"
HTTPS_SECRET = "demo-model-pull"
S3_ACCESS_SECRET = "demo-s3-access-key"
S3_SECRET_SECRET = "demo-s3-secret-key"
CA_CONFIGMAP = "demo-ca"
CLAIM = "demo-model-claim"
CACHE_CLAIM = "demo-model-cache"  # the node's shared model cache (fetcher.cache), a folder here
BUCKET = "demo-models"
INPUT = [1.0, 2.0, 3.0, 4.0]


@dataclass(frozen=True)
class DemoModel:
    name: str
    source: str  # https, s3, volume
    uri: str
    addend: float

    def expected(self) -> list[float]:
        return [value + self.addend for value in INPUT]


@dataclass
class DemoSources:
    """The three repositories, running, and what a cluster would hold for the pod."""

    models: list[DemoModel]
    https: RunningServer
    s3_url: str
    ca_pem: str
    claims: dict[str, Path]

    def values(self) -> dict[str, Any]:
        """Chart values: the three repositories, the lease, the CA, a CPU Triton."""
        return {
            "server": {"modelRepositories": {
                "https": [{"secretName": HTTPS_SECRET, "targetUri": "127.0.0.1/models"}],
                "volumes": [{"repositoryName": "demo-volume", "volumeClaimName": CLAIM}],
                "s3": [{"repositoryName": "demo-s3", "bucketName": BUCKET, "endpoint": self.s3_url,
                        "accessKey": S3_ACCESS_SECRET, "secretKey": S3_SECRET_SECRET}],
            }},
            "lease": {"models": [f"name={m.name},uri={m.uri}" for m in self.models]},
            "fetcher": {"caBundle": {"configMapName": CA_CONFIGMAP, "key": "ca.crt"}},
            "triton": {"gpus": 0},
        }

    def secrets(self) -> dict[str, dict[str, str]]:
        """Like `kubectl create secret generic NAME --from-file NAME` (kubectl keeps the newline)."""
        return {
            HTTPS_SECRET: {HTTPS_SECRET: TOKEN + "\n"},
            S3_ACCESS_SECRET: {S3_ACCESS_SECRET: TEST_ACCESS_KEY + "\n"},
            S3_SECRET_SECRET: {S3_SECRET_SECRET: TEST_SECRET_KEY + "\n"},
        }

    def config_maps(self) -> dict[str, dict[str, str]]:
        return {CA_CONFIGMAP: {"ca.crt": self.ca_pem}}


@contextmanager
def demo_sources(work: Path, say: Callable[[str], None] = lambda _: None) -> Iterator[DemoSources]:
    """Build the three models and serve them; stop the servers on exit."""
    models = []
    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1", "localhost")
    tls_dir = work / "tls"
    tls_dir.mkdir(parents=True)
    chain, key = tls_dir / "server-chain.pem", tls_dir / "server-key.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in certificate.cert_chain_pems))
    certificate.private_key_pem.write_to_path(str(key))
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_tls)

    site = work / "https-site" / "models"
    site.mkdir(parents=True)
    zip_model(site / "https_model.zip", model_files("https_model", addend=1.0), top_folder="https_model")
    s3_root = work / "s3-root"
    write_bucket_files(s3_root, BUCKET, {f"parent/s3_model/{path}": body
                                         for path, body in model_files("s3_model", addend=10.0).items()})
    claim = work / "claims" / CLAIM
    write_model(claim / "volume_model", "volume_model", addend=100.0)
    say("built 3 python-backend models: https_model (+1), s3_model (+10), volume_model (+100)")

    with ExitStack() as stack:
        https = stack.enter_context(serve_files(site.parent, tls=server_tls, required_auth={"/models/": TOKEN}))
        say(f"HTTPS server {https.base_url} serves /models/https_model.zip (a zip, one top folder); "
            f"it answers 401 without the secret {HTTPS_SECRET}")
        s3 = stack.enter_context(rclone_s3(s3_root, keys=(TEST_ACCESS_KEY, TEST_SECRET_KEY), static=True,
                                           tls=(chain, key), log=work / "rclone.log"))
        say(f"S3 server (rclone serve s3, keys required) {s3.url}: s3://{BUCKET}/parent/s3_model/")
        say(f"volume claim {CLAIM} stands in as the folder {claim}")
        models = [
            DemoModel("https_model", "https", https.url("models/https_model.zip"), 1.0),
            DemoModel("s3_model", "s3", "model://demo-s3/parent/s3_model", 10.0),
            DemoModel("volume_model", "volume", "model://demo-volume/volume_model", 100.0),
        ]
        yield DemoSources(models=models, https=https, s3_url=s3.url, ca_pem=ca.cert_pem.bytes().decode(),
                          claims={CLAIM: claim})


@dataclass
class PodRun:
    """What happened when the rendered pod ran here."""

    mode: str
    init: ContainerRun
    explain: list[dict[str, Any]] = field(default_factory=list)
    triton_started: bool = False
    triton_seconds: float = 0.0
    triton_args: list[str] = field(default_factory=list)
    installed: dict[str, int] = field(default_factory=dict)  # model -> bytes
    served: dict[str, tuple[bool, list[float] | None]] = field(default_factory=dict)  # model -> (ready, output)


def _arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def explain_args(fetch_args: list[str]) -> list[str]:
    """`model-fetcher explain --json` with the lease options of the rendered `fetch` arguments."""
    args = ["explain", "--json"]
    for flag in ("--values", "--secrets-dir", "--volumes-dir"):
        if flag in fetch_args:
            args += [flag, _arg(fetch_args, flag)]
    return args


def installed_bytes(pod: LocalPod, container: dict[str, Any], folder: Path) -> int:
    """Bytes of a model folder in the repository; a link (a volume model) is followed in the pod's view."""
    if folder.is_symlink():
        target = os.readlink(folder)
        if target.startswith("/") and not Path(target).exists():
            folder = pod.local_path(container, target)
        else:
            folder = folder.resolve()
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run_pod(rendered: Rendered, sources: DemoSources, root: Path, *, say: Callable[[str], None] = lambda _: None,
            on_line: Callable[[str], None] | None = None, models: list[str] | None = None,
            secrets: dict[str, dict[str, str]] | None = None, timeout: float = 180.0,
            install: FetcherInstall | None = None, while_serving: Callable[[LocalPod], None] | None = None) -> PodRun:
    """Run the rendered pod here: the init container, then (only if it succeeded) Triton.

    ``secrets``: the cluster's Secrets, when not the demo's own (a test leaves one out);
    ``install``: where the fetcher image's ``model-fetcher`` comes from (default: this environment);
    ``while_serving``: called with the pod while its Triton serves (after the models answered).
    """
    config_maps = {**rendered.config_maps(), **sources.config_maps()}
    secrets = sources.secrets() if secrets is None else secrets
    with LocalPod(rendered.pod, root, config_maps=config_maps, secrets=secrets,
                  claims=sources.claims, install=install) as pod:
        fetcher = rendered.fetcher
        say(f"local pod: {describe_mode(pod.mode)}")
        for mount in pod.mounts(fetcher):
            kind = "tmpfs" if mount.tmpfs_size is not None else ("ro" if mount.read_only else "rw")
            say(f"  {fetcher['name']}: {mount.path} <- {mount.volume or 'terminationMessagePath'} ({kind})")
        explain = pod.run(fetcher, timeout=60, args=explain_args(fetcher["args"]))
        plans = json.loads(explain.output[explain.output.index("["):]) if explain.returncode == 0 else []
        for plan in plans:
            say(f"  explain {plan['name']}: {plan['source']} {plan['location']}; secret {plan['secret'] or '-'} "
                f"({plan['reason']})")
        say(f"init container: {' '.join(fetcher['command'] + fetcher['args'])}")
        init = pod.run(fetcher, timeout=timeout, on_line=on_line)
        if pod.mode == REWRITE:
            say(f"  (fallback: ran with paths rewritten: {' '.join(pod.argv[fetcher['name']])})")
        result = PodRun(mode=pod.mode, init=init, explain=plans)
        if init.returncode != 0:
            say(f"init container failed with exit status {init.returncode}; Triton is not started")
            return result
        dest = _arg(fetcher["args"], "--dest")
        repository = pod.local_path(fetcher, dest)
        for model in sorted(p for p in repository.iterdir()):
            result.installed[model.name] = installed_bytes(pod, fetcher, model)
        for mount in pod.mounts(rendered.triton):
            kind = "tmpfs" if mount.tmpfs_size is not None else ("ro" if mount.read_only else "rw")
            say(f"  {rendered.triton['name']}: {mount.path} <- {mount.volume or 'terminationMessagePath'} ({kind})")
        started = time.monotonic()
        with pod.serve_triton(rendered.triton, root / "triton.log") as triton:
            result.triton_started = True
            result.triton_seconds = time.monotonic() - started
            result.triton_args = ["tritonserver", *pod_triton_args(triton)]
            say(f"Triton (the rendered args; ports moved to free loopback ports, the local backend directory "
                f"added) ready after {result.triton_seconds:.1f}s: {' '.join(result.triton_args)}")
            for name in models if models is not None else sorted(result.installed):
                ready = triton.model_ready(name)
                output = triton.infer(name, INPUT) if ready else None
                result.served[name] = (ready, output)
                say(f"  {name}: ready={ready}  infer {INPUT} -> {output}")
            if while_serving is not None:
                while_serving(pod)
        return result


def pod_triton_args(triton: Any) -> list[str]:
    """The arguments Triton was started with (after the mount script and the binary)."""
    args = [str(a) for a in triton.process.args]
    binary = next((i for i, a in enumerate(args) if a.endswith("/tritonserver")), None)
    if binary is None:  # a wrapper that execs tritonserver: the rendered args follow its own
        return args[next(i for i, a in enumerate(args) if a.startswith("--model-repository")):]
    return args[binary + 1:]


def _human(count: int) -> str:
    return f"{count} B" if count < 1024 else f"{count / 1024:.1f} KiB"


def main() -> int:
    started = time.monotonic()

    def say(message: str) -> None:
        print(f"==> {message}", flush=True)

    def show(line: str) -> None:
        print(f"    | {line}", flush=True)

    with tempfile.TemporaryDirectory(prefix="triton-lease-demo-") as scratch:
        work = Path(scratch)
        with demo_sources(work, say) as sources:
            (work / "claims" / CACHE_CLAIM).mkdir(parents=True)
            sources = replace(sources, claims={**sources.claims, CACHE_CLAIM: work / "claims" / CACHE_CLAIM})
            values = merge_values(sources.values(), {"fetcher": {"cache": {
                "enabled": True, "existingClaim": {"claimName": CACHE_CLAIM}, "maxSize": "1Gi"}}})
            say(f"rendering the chart (helm-python-sdk, Helm's engine) as release {RELEASE!r} in {NAMESPACE!r} "
                f"with the lease: {', '.join(m.name for m in sources.models)}")
            problems = lint_chart(values, kube_version=LINT_KUBE_VERSION, namespace=NAMESPACE)
            say(f"helm lint --strict --kube-version {LINT_KUBE_VERSION}: "
                f"{'clean' if not problems else '; '.join(problems)}")
            rendered = render_chart(values, name=RELEASE, namespace=NAMESPACE)
            say("the fetcher image is not available here: the rendered command `model-fetcher` runs from "
                f"this virtual environment ({Path(sys.executable).parent}, first on the container's PATH)")
            run = run_pod(rendered, sources, work / "pod", say=say, on_line=show)
            second = None
            if run.init.returncode == 0:
                say("a second pod of the lease on the same node: its fetcher finds the HTTPS and S3 models in the "
                    "node's cache (fetcher.cache) and links them; the volume model is linked from its claim as before")
                second = run_pod(rendered, sources, work / "pod-2", say=lambda _: None,
                                 on_line=lambda line: show(line) if "event=cache" in line else None)

    def served(pod: PodRun | None) -> bool:
        return (pod is not None and pod.init.returncode == 0 and pod.triton_started and len(pod.served) == 3
                and all(ready and output == model.expected() for model in sources.models
                        for ready, output in [pod.served.get(model.name, (False, None))]))

    ok = served(run) and served(second)
    if run.init.returncode != 0:
        print(f"termination message: {run.init.termination_message}")
    print()
    print(f"{'model':<14}{'source':<8}{'bytes':>10}  {'ready':<6} inference {INPUT}")
    for model in sources.models:
        ready, output = run.served.get(model.name, (False, None))
        print(f"{model.name:<14}{model.source:<8}{_human(run.installed.get(model.name, 0)):>10}  "
              f"{str(ready):<6} {output}")
    print(f"models: {len(run.installed)}   bytes installed: {sum(run.installed.values())}   "
          f"fetch: {run.init.seconds:.2f}s   Triton ready: {run.triton_seconds:.1f}s   "
          f"total: {time.monotonic() - started:.1f}s   mode: {run.mode}   result: {'OK' if ok else 'FAILED'}")
    if second is not None:
        hits = second.init.output.count("event=cache-hit")
        print(f"second pod: fetch {second.init.seconds:.2f}s, {hits} models from the node's cache, "
              f"Triton ready: {second.triton_seconds:.1f}s, all served: {served(second)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

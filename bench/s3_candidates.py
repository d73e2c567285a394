"""Ways to download an S3 prefix, measured side by side before one is chosen for the fetcher.

    python -m bench.s3_candidates [--scale 0.25] [--runs 3] [--workloads A,B]

Candidates, each a separate process from start to exit, against `rclone serve s3` on loopback:
- fetcher: the present S3 path (boto3 ``get_object``, 32 MiB ranged parts over 64 MiB, 4 at once);
- presigned: boto3 only to list and presign; the GETs over one pooled urllib3 client (same parts);
- awscrt: the AWS common runtime's S3 client (``awscrt.s3``, C, its own part splitting and
  concurrency), boto3 only to list;
- s5cmd, the reference.
Results are printed; bench/README.md keeps the numbers that chose.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import report
from bench.measure import Step
from bench.run import BUCKET
from bench.runner import Bench
from bench.report import ToolResult
from bench.servers import rclone_s3
from bench.tools import TOOLS, Context, Tool, base_environments, fetcher_fetch_options, write_fetcher_s3_values
from bench.workloads import Generated, build_workloads, write_prefix

PART = 32 * 1024 * 1024
THRESHOLD = 64 * 1024 * 1024
READ = 64 * 1024


def _objects(client, bucket: str, prefix: str) -> list[tuple[str, int]]:
    found = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        found += [(item["Key"], item["Size"]) for item in page.get("Contents", [])]
    return found


def _target(dest: Path, prefix: str, key: str, size: int) -> Path:
    path = dest / key[len(prefix) + 1:]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        out.truncate(size)
    return path


def download_presigned(endpoint: str, bucket: str, prefix: str, dest: Path) -> None:
    import boto3
    import urllib3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=endpoint, config=Config(signature_version="s3v4"))
    pool = urllib3.PoolManager(maxsize=4)
    jobs = []
    for key, size in _objects(client, bucket, prefix):
        path = _target(dest, prefix, key, size)
        url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=900)
        bounds = [(0, size)] if size <= THRESHOLD else [(s, min(s + PART, size)) for s in range(0, size, PART)]
        jobs += [(url, path, start, end, size) for start, end in bounds]

    def fetch(job: tuple[str, Path, int, int, int]) -> None:
        url, path, start, end, size = job
        headers = {} if (start, end) == (0, size) else {"Range": f"bytes={start}-{end - 1}"}
        response = pool.request("GET", url, headers=headers, preload_content=False)
        if response.status not in (200, 206):
            raise RuntimeError(f"{path.name}: HTTP {response.status}")
        fd = os.open(path, os.O_WRONLY)
        try:
            offset = start
            while chunk := response.read1(READ):
                os.pwrite(fd, chunk, offset)
                offset += len(chunk)
        finally:
            os.close(fd)
            response.release_conn()

    with ThreadPoolExecutor(max_workers=4) as workers:
        list(workers.map(fetch, jobs))


def download_crt(endpoint: str, bucket: str, prefix: str, dest: Path) -> None:
    import boto3
    from awscrt.auth import AwsCredentialsProvider
    from awscrt.http import HttpHeaders, HttpRequest
    from awscrt.io import ClientBootstrap, DefaultHostResolver, EventLoopGroup
    from awscrt.s3 import S3Client, S3RequestTlsMode, S3RequestType, create_default_s3_signing_config

    objects = _objects(boto3.client("s3", endpoint_url=endpoint), bucket, prefix)
    host = endpoint.split("://", 1)[1]
    group = EventLoopGroup()
    bootstrap = ClientBootstrap(group, DefaultHostResolver(group))
    credentials = AwsCredentialsProvider.new_static(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    client = S3Client(bootstrap=bootstrap, region="us-east-1", tls_mode=S3RequestTlsMode.DISABLED,
                      signing_config=create_default_s3_signing_config(region="us-east-1",
                                                                      credential_provider=credentials),
                      part_size=8 * 1024 * 1024, throughput_target_gbps=10.0)
    requests = []
    for key, size in objects:
        path = dest / key[len(prefix) + 1:]
        path.parent.mkdir(parents=True, exist_ok=True)
        request = HttpRequest("GET", f"/{bucket}/{key}", HttpHeaders([("host", host)]))
        requests.append(client.make_request(type=S3RequestType.GET_OBJECT, request=request, recv_filepath=str(path)))
    for request in requests:
        request.finished_future.result(timeout=900)


def _candidate(name: str, via: str) -> Tool:
    def steps(ctx: Context, model: Generated, out: Path, scratch: Path) -> list[Step]:
        assert ctx.s3
        out.mkdir(parents=True, exist_ok=True)
        argv = [ctx.python, "-m", "bench.s3_candidates", "download", via, ctx.s3.endpoint, ctx.s3.bucket,
                model.s3_prefix, str(out)]
        return [Step(argv, env=ctx.aws_env, cwd=Path(__file__).resolve().parents[1])]

    return Tool(name, name.replace(" ", ""), "s3", f"python -m bench.s3_candidates download {via}",
                lambda ctx: (True, via), steps)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["download"]:
        via, endpoint, bucket, prefix, dest = argv[1:6]
        {"presigned": download_presigned, "awscrt": download_crt}[via](endpoint, bucket, prefix, Path(dest))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.s3_candidates")
    parser.add_argument("--scale", type=float, default=0.25)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--workloads", default="A,B")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="s3-candidates-"))
    try:
        workloads = build_workloads(args.scale)
        bucket_dir = workdir / "s3root" / BUCKET
        generated = {key: Generated.for_workload(workloads[key], workdir / "www") for key in args.workloads.split(",")}
        for model in generated.values():
            write_prefix(model.workload, bucket_dir)
        clean_env, _ = base_environments(workdir, None)
        ctx = Context(workdir=workdir, python=sys.executable, clean_env=clean_env,
                      fetcher_extra=fetcher_fetch_options())
        with rclone_s3(bucket_dir.parent, BUCKET, workdir) as s3:
            ctx.s3 = s3
            ctx.values_file, ctx.secrets_dir = write_fetcher_s3_values(workdir, s3)
            ctx.clean_env, ctx.aws_env = base_environments(workdir, s3)
            tools = [t for t in TOOLS if t.transport == "s3" and t.name in ("fetcher", "s5cmd")]
            tools += [_candidate("presigned + urllib3", "presigned"), _candidate("awscrt", "awscrt")]
            bench = Bench(args, workdir)
            for key, model in generated.items():
                results = {id(tool): ToolResult(tool=tool.name, transport="s3") for tool in tools}
                started = time.monotonic()
                bench.compare(tools, results, ctx, model, f"{key}/s3")
                print(f"\n{key}: {model.workload.title} (scale {args.scale}, {time.monotonic() - started:.0f} s)")
                print(report.plain_table(list(results.values())), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

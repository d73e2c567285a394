"""Argument parsing, the settings built from it (FetchOptions, WatchSettings), and outcomes mapped to exit codes.

Defaults live with the settings they feed (FetchOptions, WatchSettings); only those of the command
line itself (where the pod mounts things, models at once) live here.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Sequence, TextIO

from fetcher import __version__
from fetcher.cache.store import CacheSettings, ModelCache
from fetcher.cli.explain import print_plans
from fetcher.credentials.secrets import SecretStore
from fetcher.errors import FetcherError
from fetcher.exit_codes import ExitCode
from fetcher.lease.values import load_lease
from fetcher.logs import LOG_FORMATS, configure, get_logger
from fetcher.plan import plan_lease
from fetcher.progress import PROGRESS_INTERVAL, FetchObserver
from fetcher.repository.install import Repository, default_staging_dir
from fetcher.runner import fetch_all
from fetcher.sources.base import FetchOptions
from fetcher.termination import order_failures, write_termination_message
from fetcher.watch.settings import WatchSettings
from fetcher.watch.status import STATUS_NAME

DEFAULT_SECRETS_DIR = "/var/run/secrets/model-fetcher"
DEFAULT_VOLUMES_DIR = "/mnt/model-volumes"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
DEFAULT_CONCURRENCY = 4  # models fetched at once
METRICS_ADDRESS = "0.0.0.0"  # watch --metrics-port: reachable by the cluster's Prometheus


def _size(text: str) -> int:
    """Bytes, or a number with K, M, G, T (1024-based; Ki, Mi, Gi, Ti and KiB... say the same)."""
    units = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    value = text.strip().lower().removesuffix("b")
    value = value.removesuffix("i") if value[-2:-1] in ("k", "m", "g", "t") else value
    unit = value[-1] if value and value[-1] in units else ""
    number = value[: -1] if unit else value
    try:
        result = int(float(number) * units[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (say 500M, 20G or a byte count)") from None
    if result <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than zero")
    return result


def _positive(text: str, convert: Callable[[str], float], what: str) -> float:
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than zero")
    return value


def _count(text: str) -> int:
    return int(_positive(text, int, "a whole number"))


def _seconds(text: str) -> float:
    return _positive(text, float, "a number of seconds")


def _header_name(text: str) -> str:
    from fetcher.watch.triton_client import HEADER_NAME

    if not HEADER_NAME.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an HTTP header name (letters, digits and -_.!#$%&'*+^`|~)")
    return text


def _interval(text: str) -> float:
    """Seconds, or 0 for never."""
    try:
        never = float(text) == 0
    except ValueError:
        never = False  # _seconds says what is wrong
    return 0.0 if never else _seconds(text)


def _port(text: str) -> int:
    if text.strip() == "0":
        return 0
    port = _count(text)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535, or 0 for none)")
    return port


def _http_url(text: str) -> str:
    if not text.lower().startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{text!r} has no scheme: write http://{text} (or https://)")
    return text


def _size_text(byte_count: int) -> str:
    for unit, size in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if byte_count % size == 0:
            return f"{byte_count // size}{unit}"
    return str(byte_count)


def _add_lease_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--values", action="append", default=[], type=Path, metavar="FILE",
                        help="Helm values file; repeat it, later files override earlier ones like helm -f")
    parser.add_argument("--model", action="append", default=[], metavar="SPEC",
                        help="a model to add to lease.models: name=<model>,uri=<uri>")
    parser.add_argument("--secrets-dir", type=Path, default=Path(DEFAULT_SECRETS_DIR), metavar="DIR",
                        help="where secrets are mounted as <DIR>/<secretName>/<key> (default: %(default)s)")
    parser.add_argument("--volumes-dir", type=Path, default=Path(DEFAULT_VOLUMES_DIR), metavar="DIR",
                        help="where volume claims are mounted as <DIR>/<repositoryName> (default: %(default)s)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--debug", "--traceback", action="store_true",
                        help="log at DEBUG level, with the stack of an internal error (for a bug report)")
    parser.add_argument("--log-format", default="text", choices=LOG_FORMATS,
                        help="log lines as key=value text, or one JSON object a line with the same keys "
                             "(default: %(default)s)")


def _add_fetch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dest", type=Path, required=True, metavar="DIR", help="the Triton model repository root")
    parser.add_argument("--staging-dir", type=Path, metavar="DIR",
                        help="work folder on the same filesystem, outside DEST (default: DEST's sibling .<name>.staging)")
    parser.add_argument("--ca-bundle", metavar="FILE",
                        help="CA certificates to verify HTTPS and S3 servers with (default: the system's, "
                             "or REQUESTS_CA_BUNDLE / AWS_CA_BUNDLE)")
    parser.add_argument("--termination-log", type=Path, default=Path(DEFAULT_TERMINATION_LOG), metavar="FILE",
                        help="where a failure's reason is written for kubectl describe (default: %(default)s)")
    parser.add_argument("--concurrency", type=_count, default=DEFAULT_CONCURRENCY, metavar="N",
                        help="models fetched at once (default: %(default)s)")
    parser.add_argument("--transfer-concurrency", type=_count, default=FetchOptions.transfer_concurrency, metavar="N",
                        help="parallel transfers within one model, S3 objects or ranged parts (default: %(default)s)")
    parser.add_argument("--max-model-size", type=_size, default=FetchOptions.max_model_bytes, metavar="SIZE",
                        help="largest model accepted, downloaded or unpacked "
                             f"(default: {_size_text(FetchOptions.max_model_bytes)})")
    parser.add_argument("--model-timeout", type=_seconds, default=FetchOptions.model_timeout, metavar="SECONDS",
                        help="longest one model's fetch may take (default: %(default)s)")
    parser.add_argument("--read-timeout", type=_seconds, default=FetchOptions.read_timeout, metavar="SECONDS",
                        help="longest wait for the next bytes from a server (default: %(default)s)")
    parser.add_argument("--volume-mode", choices=["link", "copy"], default=FetchOptions.volume_mode,
                        help="install volume models as symbolic links or as copies (default: %(default)s)")
    parser.add_argument("--no-change-check", dest="change_check", action="store_false",
                        help="never ask the source whether an installed model's content changed at the same URI "
                             "(one ranged GET or S3 listing per model, on each fetch and each watch poll); "
                             "for sources known to be immutable")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR",
                        help="a model cache shared by the pods of the node: HTTP(S) and S3 models are fetched "
                             "into it once and linked from it (mount it at the same path in Triton)")
    parser.add_argument("--cache-lease-grace", type=float, default=CacheSettings.lease_grace, metavar="SECONDS",
                        help="how long the entries a pod links to stay protected from eviction after its "
                             "fetcher ends, when no process of the pod holds its lease lock (default: %(default)s)")
    parser.add_argument("--cache-max-size", type=_size, metavar="SIZE",
                        help="the cache's size limit, in bytes or with a Ki, Mi, Gi or Ti suffix; least recently "
                             "used entries that no running pod needs are evicted to stay under it")
    parser.add_argument("--progress-interval", type=_interval, default=PROGRESS_INTERVAL, metavar="SECONDS",
                        help="log a progress line (bytes, total, rate, ETA) for each model in flight this often; "
                             "0 for none (default: %(default)s)")


def _add_watch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--triton-url", type=_http_url, default=WatchSettings.triton_url, metavar="URL",
                        help="Triton's HTTP endpoint, whose model repository API loads and unloads models "
                             "(default: %(default)s)")
    parser.add_argument("--triton-auth-header", type=_header_name, default=WatchSettings.triton_auth_header,
                        metavar="NAME", help="header sent with every load and unload, for a Triton started with "
                                             "--http-restricted-api=model-repository:NAME=VALUE (default: %(default)s)")
    parser.add_argument("--triton-auth-file", type=Path, metavar="FILE",
                        help="file holding that header's VALUE (a mounted Secret); read once at start, never logged")
    parser.add_argument("--poll-interval", type=_seconds, default=WatchSettings.poll_interval, metavar="SECONDS",
                        help="how often the values files are checked for a change (default: %(default)s)")
    parser.add_argument("--retry-interval", type=_seconds, default=WatchSettings.retry_interval, metavar="SECONDS",
                        help="first wait before a failed sync is tried again; doubles while it keeps failing "
                             "(default: %(default)s)")
    parser.add_argument("--triton-connect-timeout", type=_seconds, default=WatchSettings.triton_connect_timeout, metavar="SECONDS",
                        help="longest wait to connect to Triton (default: %(default)s)")
    parser.add_argument("--triton-timeout", type=_seconds, default=WatchSettings.triton_timeout, metavar="SECONDS",
                        help="longest one load or unload may take, and longest wait for Triton to be live "
                             "before a change is applied (default: %(default)s)")
    parser.add_argument("--status-file", type=Path, metavar="FILE",
                        help="where the sidecar's status is written for `model-fetcher status` "
                             "(default: status.json in the staging folder)")
    parser.add_argument("--metrics-port", type=_port, default=0, metavar="PORT",
                        help="serve Prometheus metrics at http://ADDRESS:PORT/metrics; 0 for none (default: %(default)s)")
    parser.add_argument("--metrics-address", default=METRICS_ADDRESS, metavar="ADDRESS",
                        help="the address the metrics server listens on (default: %(default)s)")


def _add_status_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--status-file", type=Path, metavar="FILE", help="the status file that watch writes")
    parser.add_argument("--dest", type=Path, metavar="DIR",
                        help="instead of --status-file: the repository root watch was given (its default status file)")
    parser.add_argument("--staging-dir", type=Path, metavar="DIR", help="the --staging-dir watch was given, if any")
    parser.add_argument("--require-healthy", action="store_true",
                        help="also fail when the last sync could not apply every change")
    parser.add_argument("--json", action="store_true", help="print the status as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="model-fetcher",
        description="Fetch a lease's models (HTTP(S) zips, volume folders, S3 prefixes) into a Triton model repository.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fetch = commands.add_parser("fetch", help="fetch every model of the lease into --dest")
    _add_lease_options(fetch)
    _add_fetch_options(fetch)
    explain = commands.add_parser("explain", help="show how each model would be fetched, downloading nothing")
    _add_lease_options(explain)
    explain.add_argument("--json", action="store_true", help="print a JSON list")
    watch = commands.add_parser("watch", help="sidecar mode: fetch the lease, then apply every change of the "
                                              "values files to a running Triton (explicit model control)")
    _add_lease_options(watch)
    _add_fetch_options(watch)
    _add_watch_options(watch)
    status = commands.add_parser("status", help="exit 0 once watch has installed the lease (a startup probe)")
    _add_status_options(status)
    return parser


def _lease_options(args: argparse.Namespace) -> FetchOptions:
    """What planning needs (explain has no fetch options): the mounts, other settings at their defaults."""
    return FetchOptions(secrets=SecretStore(args.secrets_dir), volumes_dir=args.volumes_dir)


def _cache(args: argparse.Namespace, observer: FetchObserver) -> ModelCache | None:
    if args.cache_dir is None and args.cache_max_size is None:
        return None
    if args.cache_dir is None or args.cache_max_size is None:
        given, missing = ("--cache-dir", "--cache-max-size") if args.cache_dir else ("--cache-max-size", "--cache-dir")
        raise FetcherError(f"{given} is given without {missing}", hint="the cache needs both its folder and its size limit")
    pod_id = os.environ.get("POD_UID") or socket.gethostname()
    return ModelCache(CacheSettings(root=args.cache_dir, max_bytes=args.cache_max_size, pod_id=pod_id,
                                    lease_grace=args.cache_lease_grace, wait_timeout=args.model_timeout),
                      metrics=observer.metrics)


def _fetch_options(args: argparse.Namespace, observer: FetchObserver, cache: ModelCache | None) -> FetchOptions:
    return dataclasses.replace(
        _lease_options(args),
        observer=observer,
        cache=cache,
        ca_bundle=args.ca_bundle,
        max_model_bytes=args.max_model_size,
        volume_mode=args.volume_mode,
        transfer_concurrency=args.transfer_concurrency,
        model_timeout=args.model_timeout,
        read_timeout=args.read_timeout,
        change_check=args.change_check,
    )


def _repository(args: argparse.Namespace) -> Repository:
    return Repository(root=args.dest, staging=args.staging_dir or default_staging_dir(args.dest))


def _watch_settings(args: argparse.Namespace) -> WatchSettings:
    repository = _repository(args)
    return WatchSettings(
        values=tuple(args.values),
        models=tuple(args.model),
        repository=repository,
        status_file=args.status_file or repository.staging / STATUS_NAME,
        termination_log=args.termination_log,
        concurrency=args.concurrency,
        triton_url=args.triton_url,
        poll_interval=args.poll_interval,
        retry_interval=args.retry_interval,
        triton_connect_timeout=args.triton_connect_timeout,
        triton_timeout=args.triton_timeout,
        triton_auth_header=args.triton_auth_header,
        triton_auth_file=args.triton_auth_file,
        log_format=args.log_format,
    )


def _status(args: argparse.Namespace, stdout: TextIO) -> int:
    from fetcher.watch.command import run_status

    if args.status_file:
        status_file = args.status_file
    elif args.dest is not None:
        status_file = _repository(args).staging / STATUS_NAME
    else:
        print("model-fetcher status: error: give --status-file FILE, or --dest DIR (and --staging-dir DIR "
              "if watch was given one)", file=sys.stderr)
        return ExitCode.USAGE
    return run_status(status_file, stdout, as_json=args.json, require_healthy=args.require_healthy)


def run(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    stdout = stdout or sys.stdout
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error
        return int(exc.code or 0) and ExitCode.USAGE
    if args.command == "status":
        return _status(args, stdout)
    log = configure("DEBUG" if args.debug else args.log_level, args.log_format)
    if args.command == "explain":
        try:
            plans = plan_lease(load_lease(args.values, args.model), _lease_options(args))
        except FetcherError as exc:
            log.error("error=%s", exc)
            return ExitCode.BAD_INPUT
        print_plans(plans, stdout, as_json=args.json)
        return ExitCode.SUCCESS
    from fetcher.metrics import FetchMetrics  # not for explain: it must start fast

    observer = FetchObserver(FetchMetrics(), interval=args.progress_interval)
    try:
        cache = _cache(args, observer)
    except FetcherError as exc:
        log.error("error=%s", exc)
        write_termination_message(args.termination_log, [str(exc)])
        return ExitCode.USAGE
    try:
        if args.command == "watch":
            return _watch(args, observer, cache)
        return _fetch(args, observer, cache)
    finally:
        if cache is not None:
            cache.close()  # the pod's lease lock: its Triton (or its grace period) keeps the entries now


def _fetch(args: argparse.Namespace, observer: FetchObserver, cache: ModelCache | None) -> int:
    log = get_logger()
    options = _fetch_options(args, observer, cache)
    repository = _repository(args)
    started = time.monotonic()
    try:
        plans = plan_lease(load_lease(args.values, args.model), options)
        with observer.reporting():
            results = fetch_all(plans, repository, options, args.concurrency)
    except FetcherError as exc:
        log.error("error=%s", exc)
        write_termination_message(args.termination_log, [str(exc)])
        return ExitCode.BAD_INPUT
    failures = [(f"model {r.name!r}: {r.error}", r.reason) for r in results if not r.ok]
    total = sum(r.bytes_transferred for r in results)
    figures = _write_metrics_file(observer, repository)
    log.info("event=done models=%d installed=%d failed=%d bytes=%d seconds=%.2f%s", len(results),
             len(results) - len(failures), len(failures), total, time.monotonic() - started, figures)
    if failures:
        if args.log_format == "text":  # in JSON, the event=failed lines say it, and stderr stays JSON
            for line, _reason in failures:
                print(line, file=sys.stderr)
        write_termination_message(args.termination_log, order_failures(failures))
        return ExitCode.MODELS_FAILED
    return ExitCode.SUCCESS


def _write_metrics_file(observer: FetchObserver, repository: Repository) -> str:
    """Write the run's metrics into the staging folder (node exporter textfile format); return their
    totals as fields for the last log line."""
    metrics = observer.metrics
    if metrics is None:
        return ""
    from fetcher.metrics import TEXTFILE_NAME

    figures = " ".join(f"{key}={value}" for key, value in metrics.totals().items())
    path = repository.staging / TEXTFILE_NAME
    try:
        metrics.write_textfile(path)
    except OSError as exc:
        return f" {figures} metrics_file=- metrics_error={exc.strerror or exc}"
    return f" {figures} metrics_file={path}"


def _watch(args: argparse.Namespace, observer: FetchObserver, cache: ModelCache | None) -> int:
    from fetcher.watch.command import run_watch

    log = get_logger()
    server = None
    if args.metrics_port and observer.metrics is not None:
        try:
            server = observer.metrics.serve(args.metrics_address, args.metrics_port)
        except FetcherError as exc:
            log.error("error=%s", exc)
            write_termination_message(args.termination_log, [str(exc)])
            return ExitCode.USAGE
        log.info("event=metrics-serving address=%s port=%d path=/metrics", args.metrics_address, server.port)
    try:
        with observer.reporting():
            return run_watch(_watch_settings(args), _fetch_options(args, observer, cache))
    finally:
        if server is not None:
            server.close()


def main() -> int:
    return run()


if __name__ == "__main__":
    sys.exit(main())

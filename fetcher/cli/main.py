"""Argument parsing and the mapping of outcomes to exit statuses."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence, TextIO

from fetcher import __version__
from fetcher.cli.explain import print_plans
from fetcher.cli.status import ExitStatus
from fetcher.credentials.secrets import SecretStore
from fetcher.errors import FetcherError
from fetcher.lease.values import load_lease
from fetcher.logs import configure
from fetcher.plan import plan_lease
from fetcher.repository.install import Repository, default_staging_dir
from fetcher.runner import fetch_all
from fetcher.sources.base import DEFAULT_MAX_MODEL_BYTES, FetchOptions
from fetcher.termination import write_termination_message

DEFAULT_SECRETS_DIR = "/var/run/secrets/model-fetcher"
DEFAULT_VOLUMES_DIR = "/mnt/model-volumes"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"


def _size(text: str) -> int:
    units = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    value = text.strip().lower().removesuffix("ib").removesuffix("b")
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


def _add_fetch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dest", type=Path, required=True, metavar="DIR", help="the Triton model repository root")
    parser.add_argument("--staging-dir", type=Path, metavar="DIR",
                        help="work folder on the same filesystem, outside DEST (default: DEST's sibling .<name>.staging)")
    parser.add_argument("--ca-bundle", metavar="FILE",
                        help="CA certificates to verify HTTPS and S3 servers with (default: the system's, "
                             "or REQUESTS_CA_BUNDLE / AWS_CA_BUNDLE)")
    parser.add_argument("--termination-log", type=Path, default=Path(DEFAULT_TERMINATION_LOG), metavar="FILE",
                        help="where a failure's reason is written for kubectl describe (default: %(default)s)")
    parser.add_argument("--concurrency", type=_count, default=4, metavar="N",
                        help="models fetched at once (default: %(default)s)")
    parser.add_argument("--transfer-concurrency", type=_count, default=4, metavar="N",
                        help="parallel transfers within one model, S3 objects or ranged parts (default: %(default)s)")
    parser.add_argument("--max-model-size", type=_size, default=DEFAULT_MAX_MODEL_BYTES, metavar="SIZE",
                        help="largest model accepted, downloaded or unpacked (default: 100G)")
    parser.add_argument("--model-timeout", type=_seconds, default=3600.0, metavar="SECONDS",
                        help="longest one model's fetch may take (default: %(default)s)")
    parser.add_argument("--read-timeout", type=_seconds, default=60.0, metavar="SECONDS",
                        help="longest wait for the next bytes from a server (default: %(default)s)")
    parser.add_argument("--volume-mode", choices=["link", "copy"], default="link",
                        help="install volume models as symbolic links or as copies (default: %(default)s)")


def _add_watch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--triton-url", default="http://localhost:8000", metavar="URL",
                        help="Triton's HTTP endpoint, whose model repository API loads and unloads models "
                             "(default: %(default)s)")
    parser.add_argument("--triton-auth-header", type=_header_name, default="model-control-key", metavar="NAME",
                        help="header sent with every load and unload, for a Triton started with "
                             "--http-restricted-api=model-repository:NAME=VALUE (default: %(default)s)")
    parser.add_argument("--triton-auth-file", type=Path, metavar="FILE",
                        help="file holding that header's VALUE (a mounted Secret); read once at start, never logged")
    parser.add_argument("--poll-interval", type=_seconds, default=5.0, metavar="SECONDS",
                        help="how often the values files are checked for a change (default: %(default)s)")
    parser.add_argument("--retry-interval", type=_seconds, default=60.0, metavar="SECONDS",
                        help="first wait before a failed sync is tried again; doubles while it keeps failing "
                             "(default: %(default)s)")
    parser.add_argument("--triton-connect-timeout", type=_seconds, default=5.0, metavar="SECONDS",
                        help="longest wait to connect to Triton (default: %(default)s)")
    parser.add_argument("--triton-timeout", type=_seconds, default=600.0, metavar="SECONDS",
                        help="longest one load or unload may take, and longest wait for Triton to be live "
                             "before a change is applied (default: %(default)s)")
    parser.add_argument("--status-file", type=Path, metavar="FILE",
                        help="where the sidecar's status is written for `model-fetcher status` "
                             "(default: status.json in the staging folder)")


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


def _options(args: argparse.Namespace) -> FetchOptions:
    return FetchOptions(
        secrets=SecretStore(args.secrets_dir),
        volumes_dir=args.volumes_dir,
        ca_bundle=getattr(args, "ca_bundle", None),
        max_model_bytes=getattr(args, "max_model_size", DEFAULT_MAX_MODEL_BYTES),
        volume_mode=getattr(args, "volume_mode", "link"),
        transfer_concurrency=getattr(args, "transfer_concurrency", 4),
        model_timeout=getattr(args, "model_timeout", 3600.0),
        read_timeout=getattr(args, "read_timeout", 60.0),
    )


def run(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    stdout = stdout or sys.stdout
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error
        return int(exc.code or 0) and ExitStatus.USAGE
    if args.command == "status":
        from fetcher.watch.command import run_status

        return run_status(args, stdout)
    log = configure(args.log_level)
    termination_log = getattr(args, "termination_log", None)
    if args.command == "watch":
        from fetcher.watch.command import run_watch

        return run_watch(args, _options(args))
    try:
        lease = load_lease(args.values, args.model)
        options = _options(args)
        plans = plan_lease(lease, options)
    except FetcherError as exc:
        log.error("error=%s", exc)
        write_termination_message(termination_log, [str(exc)])
        return ExitStatus.BAD_INPUT
    if args.command == "explain":
        print_plans(plans, stdout, as_json=args.json)
        return ExitStatus.SUCCESS

    dest: Path = args.dest
    repository = Repository(root=dest, staging=args.staging_dir or default_staging_dir(dest))
    try:
        results = fetch_all(plans, repository, options, args.concurrency)
    except FetcherError as exc:
        log.error("error=%s", exc)
        write_termination_message(termination_log, [str(exc)])
        return ExitStatus.BAD_INPUT
    failures = [f"model {r.name!r}: {r.error}" for r in results if not r.ok]
    total = sum(r.bytes_transferred for r in results)
    log.info("event=done models=%d installed=%d failed=%d bytes=%d", len(results), len(results) - len(failures),
             len(failures), total)
    if failures:
        for line in failures:
            print(line, file=sys.stderr)
        write_termination_message(termination_log, failures)
        return ExitStatus.MODELS_FAILED
    return ExitStatus.SUCCESS


def main() -> int:
    return run()


if __name__ == "__main__":
    sys.exit(main())

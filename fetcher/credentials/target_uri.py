"""``targetUri`` matching: which https secret applies to a model URL.

Host: DNS labels match right to left, whole labels only; an IP address matches only exactly.
Path: segments match left to right, whole segments only. The most specific match wins (most host
labels, then most path segments); ties go to the earlier entry.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from fetcher.errors import ValuesError
from fetcher.lease.values import HttpsRepository


@dataclass(frozen=True)
class TargetUri:
    host_labels: tuple[str, ...]  # for an IP address: one element, the normalised address
    is_ip: bool
    port: int | None
    path_segments: tuple[str, ...]

    @property
    def specificity(self) -> tuple[int, int]:
        return (len(self.host_labels) if not self.is_ip else 128, len(self.path_segments))


@dataclass(frozen=True)
class SecretChoice:
    """The secret chosen for a URL (or none) and why, in words fit for ``explain``."""

    secret_name: str | None
    entry: HttpsRepository | None
    reason: str


def parse_target_uri(text: str) -> TargetUri:
    raw = text.strip()
    if "://" in raw:
        raw = raw.split("://", 1)[1]
    host_port, _, path = raw.partition("/")
    if not host_port or "@" in host_port or any(ch.isspace() for ch in raw) or "?" in raw or "#" in raw:
        raise ValuesError(f"targetUri {text!r} is not of the form <domain_or_ip>[/<path>]")
    host, port = _split_port(host_port, text)
    ip = _as_ip(host)
    if ip is not None:
        labels: tuple[str, ...] = (ip,)
    else:
        labels = tuple(host.lower().rstrip(".").split("."))
        if any(not label or not all(c.isalnum() or c in "-_" for c in label) for label in labels):
            raise ValuesError(f"targetUri {text!r} has an invalid host name")
    segments = tuple(unquote(s) for s in path.split("/") if s)
    return TargetUri(host_labels=labels, is_ip=ip is not None, port=port, path_segments=segments)


def _split_port(host_port: str, text: str) -> tuple[str, int | None]:
    if host_port.startswith("["):
        host, _, rest = host_port[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValuesError(f"targetUri {text!r} has a malformed IPv6 address")
    elif host_port.count(":") == 1:
        host, _, port_text = host_port.partition(":")
    else:
        host, port_text = host_port, ""
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValuesError(f"targetUri {text!r} has an invalid port")
    return host, int(port_text)


def _as_ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _url_parts(url: str) -> tuple[tuple[str, ...], bool, int | None, tuple[str, ...]]:
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    ip = _as_ip(host)
    labels = (ip,) if ip is not None else tuple(host.lower().split("."))
    segments = tuple(unquote(s) for s in parts.path.split("/") if s)
    return labels, ip is not None, parts.port, segments


def _matches(target: TargetUri, url_labels: tuple[str, ...], url_is_ip: bool, url_port: int | None,
             url_segments: tuple[str, ...]) -> bool:
    if target.is_ip != url_is_ip:
        return False
    if target.is_ip:
        if target.host_labels != url_labels:
            return False
    elif len(target.host_labels) > len(url_labels) or url_labels[-len(target.host_labels):] != target.host_labels:
        return False
    if target.port is not None and target.port != url_port:
        return False
    return url_segments[: len(target.path_segments)] == target.path_segments


def choose_secret(url: str, entries: tuple[HttpsRepository, ...]) -> SecretChoice:
    """The most specific entry whose targetUri matches ``url``."""
    labels, is_ip, port, segments = _url_parts(url)
    best: tuple[tuple[int, int], HttpsRepository] | None = None
    matching = 0
    for entry in entries:
        target = parse_target_uri(entry.target_uri)
        if not _matches(target, labels, is_ip, port, segments):
            continue
        matching += 1
        if best is None or target.specificity > best[0]:
            best = (target.specificity, entry)
    host = labels[0] if is_ip else ".".join(labels)
    if best is None:
        if not entries:
            reason = "no https secrets are configured (server.modelRepositories.https is empty)"
        else:
            reason = f"no targetUri of {len(entries)} configured matches host {host!r} and its path"
        return SecretChoice(secret_name=None, entry=None, reason=reason)
    (host_count, path_count), entry = best
    what = "the IP address" if is_ip else f"{host_count} host label(s)"
    reason = f"targetUri {entry.target_uri!r} matches {what} and {path_count} path segment(s)"
    if matching > 1:
        reason += f"; the most specific of {matching} matching entries"
    return SecretChoice(secret_name=entry.secret_name, entry=entry, reason=reason)


def validate_target_uris(entries: tuple[HttpsRepository, ...]) -> None:
    for index, entry in enumerate(entries):
        try:
            parse_target_uri(entry.target_uri)
        except ValuesError as exc:
            raise ValuesError(f"server.modelRepositories.https[{index}] (secret {entry.secret_name!r}): {exc.message}") from None

"""Model URIs: ``http(s)://...`` (a zip) or ``model://<repositoryName>/<path>`` (a volume or S3 repository)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from fetcher.errors import ModelSpecError

REPOSITORY_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")  # to the next white space: quotes hide nothing
HIDDEN = "***"


@dataclass(frozen=True)
class ModelUri:
    """A parsed model URI. ``text`` is the URI as given (never with credentials: those are refused)."""

    text: str
    scheme: str  # "http", "https" or "model"
    repository: str | None = None  # model:// only
    path: str | None = None  # model:// only: the model folder inside the repository

    @property
    def is_http(self) -> bool:
        return self.scheme in ("http", "https")

    @property
    def shown(self) -> str:
        """The URI fit to print: query values (a presigned signature, a token) hidden."""
        return redact_url(self.text)


def redact_url(text: str) -> str:
    """The URL (or any text holding URLs) fit to print: userinfo, every query value and the fragment hidden.

    A presigned URL (``X-Amz-Signature=``, ``sig=``, ``token=``...) is a credential until it
    expires, so no query value is ever printed; the parameter names stay, to tell URLs apart.
    """
    return _URL_IN_TEXT.sub(lambda match: _redact_one(match.group()), text)


def _redact_one(url: str) -> str:
    url = _USERINFO.sub(rf"\g<scheme>{HIDDEN}@", url)
    base, has_fragment, _fragment = url.partition("#")
    base, has_query, query = base.partition("?")
    if has_query:
        base += "?" + "&".join(_hide_value(item) for item in query.split("&"))
    return base + (f"#{HIDDEN}" if has_fragment else "")


def _hide_value(item: str) -> str:
    name, has_value, _value = item.partition("=")
    if has_value:
        return f"{name}={HIDDEN}"
    return HIDDEN if item else item  # a bare item may be the token itself


def parse_model_uri(text: str, *, model: str) -> ModelUri:
    if any(ch.isspace() for ch in text) or "\x00" in text:
        raise ModelSpecError(f"model {model!r}: the uri contains white space or control characters")
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise ModelSpecError(f"model {model!r}: malformed uri {redact_url(text)!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if "@" in parts.netloc:
        raise ModelSpecError(
            f"model {model!r}: the uri {redact_url(text)!r} carries credentials",
            hint="credentials in URLs are refused; put the token in a Secret named in server.modelRepositories.https",
        )
    if scheme in ("http", "https"):
        _check_http(parts, text, model)
        return ModelUri(text=text, scheme=scheme)
    if scheme == "model":
        repository, path = _split_model_path(parts, text, model)
        return ModelUri(text=text, scheme=scheme, repository=repository, path=path)
    raise ModelSpecError(
        f"model {model!r}: unsupported uri {redact_url(text)!r}",
        hint="use http://, https:// or model://<repositoryName>/<path>",
    )


def _check_http(parts: SplitResult, text: str, model: str) -> None:
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ModelSpecError(f"model {model!r}: the uri {redact_url(text)!r} has an invalid port") from None
    if not host:
        raise ModelSpecError(f"model {model!r}: the uri {redact_url(text)!r} has no host")


def _split_model_path(parts: SplitResult, text: str, model: str) -> tuple[str, str]:
    repository = parts.netloc
    if not repository:
        raise ModelSpecError(
            f"model {model!r}: the uri {text!r} names no repository",
            hint="write model://<repositoryName>/<path>",
        )
    if not REPOSITORY_NAME.match(repository):
        raise ModelSpecError(
            f"model {model!r}: {repository!r} in {text!r} is not a valid repository name",
            hint="repository names use lowercase letters, digits and hyphens",
        )
    if parts.query or parts.fragment:
        raise ModelSpecError(f"model {model!r}: the uri {text!r} must not have a query or fragment")
    segments = [s for s in parts.path.split("/")]
    if segments and segments[0] == "":
        segments = segments[1:]
    if segments and segments[-1] == "":
        segments = segments[:-1]
    if not segments:
        raise ModelSpecError(
            f"model {model!r}: the uri {text!r} names no model path",
            hint="write model://<repositoryName>/<path>",
        )
    for segment in segments:
        if segment in ("", ".", "..") or "\\" in segment:
            raise ModelSpecError(
                f"model {model!r}: the path in {text!r} must be plain folder names (no '.', '..', '//' or '\\\\')"
            )
    return repository, "/".join(segments)

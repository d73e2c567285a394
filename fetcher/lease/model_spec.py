"""Model specs: ``name=<model>,uri=<uri>`` strings (the ``tmsctl lease create -m`` syntax) or mappings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fetcher.errors import ModelSpecError
from fetcher.lease.uri import ModelUri, parse_model_uri, redact_url

MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")
SPEC_KEYS = ("name", "uri", "sha256")
MAPPING_KEYS = (*SPEC_KEYS, "files")  # a digest per file only fits a mapping
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
# A comma starts a new key only when a known key and '=' follow, so URLs may contain commas.
_PAIR_SPLIT = re.compile(r",\s*(?=(?:%s)=)" % "|".join(SPEC_KEYS))


@dataclass(frozen=True)
class ModelSpec:
    """One model of a lease: installed as ``<repository root>/<name>/``."""

    name: str
    uri: ModelUri
    sha256: str | None = None
    # (path in the model folder, sha256) of every file, checked before the model is installed
    files: tuple[tuple[str, str], ...] | None = None


def parse_model_spec(raw: Any, *, origin: str) -> ModelSpec:
    """Parse a spec string or mapping; ``origin`` says where it came from, for error messages."""
    if isinstance(raw, str):
        fields = _parse_spec_string(raw, origin=origin)
    elif isinstance(raw, dict):
        unknown = sorted(str(k) for k in raw if k not in MAPPING_KEYS)
        if unknown:
            raise ModelSpecError(
                f"{origin}: unknown key(s) {', '.join(unknown)} in model spec",
                hint="a model spec has the keys name, uri and optionally sha256 and files",
            )
        fields = {k: v for k, v in raw.items()}
    else:
        raise ModelSpecError(
            f"{origin}: a model spec must be 'name=<model>,uri=<uri>' or a mapping with name and uri, "
            f"not {type(raw).__name__}"
        )
    name = fields.get("name")
    uri = fields.get("uri")
    if not isinstance(name, str) or not name.strip():
        raise ModelSpecError(f"{origin}: model spec has no name", hint="write name=<model>,uri=<uri>")
    name = name.strip()
    if not MODEL_NAME.match(name) or name in (".", ".."):
        raise ModelSpecError(
            f"{origin}: model name {name!r} is not a valid Triton model name",
            hint="use letters, digits, '_', '.' and '-', starting with a letter, digit or '_'",
        )
    if not isinstance(uri, str) or not uri.strip():
        raise ModelSpecError(f"{origin}: model {name!r} has no uri", hint="write name=<model>,uri=<uri>")
    sha256 = fields.get("sha256")
    if sha256 is not None and (not isinstance(sha256, str) or not SHA256.match(sha256)):
        raise ModelSpecError(f"{origin}: model {name!r} has a sha256 that is not 64 hexadecimal digits")
    parsed_uri = parse_model_uri(uri.strip(), model=name)
    files = _file_digests(fields.get("files"), origin=origin, name=name)
    return ModelSpec(name=name, uri=parsed_uri, sha256=sha256.lower() if sha256 else None, files=files)


def _file_digests(raw: Any, *, origin: str, name: str) -> tuple[tuple[str, str], ...] | None:
    """``files: {path: sha256}``: every file of the model, by its path in the model folder."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw:
        raise ModelSpecError(f"{origin}: model {name!r}: files must map each file's path in the model folder "
                             "to its sha256 (for example 1/model.onnx: <64 hexadecimal digits>)")
    digests: list[tuple[str, str]] = []
    for path, digest in raw.items():
        segments = str(path).split("/")
        if (not isinstance(path, str) or path.startswith("/") or "\\" in path or "\x00" in path
                or any(s in ("", ".", "..") for s in segments)):
            raise ModelSpecError(f"{origin}: model {name!r}: files names {str(path)!r}, which is not a plain "
                                 "relative path in the model folder (like 1/model.onnx)")
        if not isinstance(digest, str) or not SHA256.match(digest):
            raise ModelSpecError(f"{origin}: model {name!r}: the sha256 of file {path!r} is not 64 hexadecimal digits")
        digests.append((path, digest.lower()))
    return tuple(sorted(digests))


def _parse_spec_string(raw: str, *, origin: str) -> dict[str, str]:
    text = raw.strip()
    fields: dict[str, str] = {}
    for pair in _PAIR_SPLIT.split(text):
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or key not in SPEC_KEYS:
            raise ModelSpecError(
                f"{origin}: malformed model spec {_shorten(text)!r}",
                hint="expected name=<model>,uri=<uri>",
            )
        if key in fields:
            raise ModelSpecError(f"{origin}: model spec {_shorten(text)!r} gives {key} twice")
        fields[key] = value.strip()
    if "uri" not in fields and "," in fields.get("name", ""):
        raise ModelSpecError(
            f"{origin}: model spec {_shorten(text)!r} has no uri=",
            hint="write name=<model>,uri=<uri>: the value after the comma needs 'uri=' before it",
        )
    return fields


def _shorten(text: str) -> str:
    text = redact_url(text)
    return text if len(text) <= 200 else text[:197] + "..."

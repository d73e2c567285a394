"""Helm values files, merged like ``helm -f a.yaml -f b.yaml`` and read into the fetcher's view."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

from fetcher.errors import ValuesError
from fetcher.lease.model_spec import ModelSpec, parse_model_spec


@dataclass(frozen=True)
class HttpsRepository:
    secret_name: str
    target_uri: str
    allow_plain_http: bool = False


@dataclass(frozen=True)
class VolumeRepository:
    repository_name: str
    volume_claim_name: str


@dataclass(frozen=True)
class S3Repository:
    repository_name: str
    bucket_name: str
    endpoint: str | None = None
    aws_region: str | None = None
    access_key: str | None = None  # name of the Secret holding the access key ID
    secret_key: str | None = None  # name of the Secret holding the secret access key


@dataclass(frozen=True)
class LeaseValues:
    """The fetcher's view of the merged values."""

    https: tuple[HttpsRepository, ...] = ()
    volumes: tuple[VolumeRepository, ...] = ()
    s3: tuple[S3Repository, ...] = ()
    aws_role: str | None = None
    models: tuple[ModelSpec, ...] = field(default_factory=tuple)


def merge_values(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's rule: maps merge key by key, anything else is replaced, and null deletes a key."""
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_values_files(paths: Iterable[Path]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValuesError(f"values file {str(path)!r}: cannot read it: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ValuesError(f"values file {str(path)!r}: not UTF-8 text") from None
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}" if where is not None else ""
            raise ValuesError(f"values file {str(path)!r}: not valid YAML{at}") from None
        if document is None:
            continue
        if not isinstance(document, dict):
            raise ValuesError(f"values file {str(path)!r}: the top level must be a mapping")
        merged = merge_values(merged, document)
    return merged


def load_schema() -> dict[str, Any]:
    text = resources.files("fetcher.schemas").joinpath("values.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def validate_values(values: dict[str, Any], *, origin: str) -> None:
    validator = jsonschema.Draft7Validator(load_schema())
    errors = sorted((e for error in validator.iter_errors(values) for e in _precise(error)),
                    key=lambda e: [(isinstance(part, str), part) for part in e.absolute_path])
    if not errors:
        return
    lines = [f"{origin}: {_json_path(e.absolute_path)}: {_describe(e)}" for e in errors[:10]]
    if len(errors) > 10:
        lines.append(f"... and {len(errors) - 10} more")
    raise ValuesError("invalid values:\n  " + "\n  ".join(lines))


def _precise(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """A mapping that fails a oneOf of string-or-mapping: the mapping branch's own errors, with their paths."""
    if error.validator != "oneOf" or not isinstance(error.instance, dict) or not error.context:
        return [error]
    branches: dict[Any, list[jsonschema.ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    fitting = [subs for subs in branches.values()
               if not any(sub.validator == "type" and not sub.relative_path for sub in subs)]
    if len(fitting) != 1:
        return [error]
    return [precise for sub in fitting[0] for precise in _precise(sub)]


def _json_path(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    # Never echo the offending value: a misplaced token must not reach the log.
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown key(s) {', '.join(map(str, extra))}"
    if error.validator == "required":
        return error.message.replace("'", "").replace(" is a required property", " is required")
    if error.validator == "pattern":
        return "does not have the expected form" + _schema_description(error)
    if error.validator == "anyOf":
        return "needs " + " or ".join("/".join(sub.get("required", [])) for sub in error.schema["anyOf"])
    if error.validator == "oneOf":
        return "must be 'name=<model>,uri=<uri>' or a mapping {name, uri}"
    if error.validator == "type":
        return f"must be of type {error.validator_value}"
    if error.validator in ("minLength", "maxLength", "not", "enum"):
        return "is not an allowed value" + _schema_description(error)
    return error.validator + " check failed" + _schema_description(error)


def _schema_description(error: jsonschema.ValidationError) -> str:
    description = error.schema.get("description")
    return f" ({description})" if description else ""


def build_lease_values(values: dict[str, Any], extra_models: Iterable[str] = (), *, origin: str) -> LeaseValues:
    """Validate merged values and read them, with the ``--model`` specs added to ``lease.models``."""
    validate_values(values, origin=origin)
    server = values.get("server") or {}
    repositories = server.get("modelRepositories") or {}
    https = tuple(
        HttpsRepository(secret_name=e["secretName"], target_uri=e["targetUri"],
                        allow_plain_http=bool(e.get("allowPlainHttp", False)))
        for e in repositories.get("https") or []
    )
    volumes = tuple(
        VolumeRepository(repository_name=e["repositoryName"], volume_claim_name=e["volumeClaimName"])
        for e in repositories.get("volumes") or []
    )
    s3 = tuple(
        S3Repository(
            repository_name=e["repositoryName"],
            bucket_name=e["bucketName"],
            endpoint=e.get("endpoint") or None,
            aws_region=e.get("awsRegion") or None,
            access_key=e.get("accessKey") or None,
            secret_key=e.get("secretKey") or None,
        )
        for key in ("s3", "S3")
        for e in repositories.get(key) or []
    )
    _check_unique_repository_names(volumes, s3)
    role = ((server.get("security") or {}).get("aws") or {}).get("role") or None

    models: list[ModelSpec] = []
    for index, raw in enumerate((values.get("lease") or {}).get("models") or []):
        models.append(parse_model_spec(raw, origin=f"{origin}: lease.models[{index}]"))
    for raw in extra_models:
        models.append(parse_model_spec(raw, origin="--model"))
    seen: set[str] = set()
    for spec in models:
        if spec.name in seen:
            raise ValuesError(f"model {spec.name!r} is named twice in the lease", hint="model names must be unique")
        seen.add(spec.name)
    return LeaseValues(https=https, volumes=volumes, s3=s3, aws_role=role, models=tuple(models))


def _check_unique_repository_names(volumes: tuple[VolumeRepository, ...], s3: tuple[S3Repository, ...]) -> None:
    seen: set[str] = set()
    for name in [v.repository_name for v in volumes] + [s.repository_name for s in s3]:
        if name in seen:
            raise ValuesError(
                f"repository name {name!r} is configured more than once in server.modelRepositories",
                hint="each repositoryName must be unique across volumes and s3",
            )
        seen.add(name)


def load_lease(values_files: Iterable[Path], extra_models: Iterable[str] = ()) -> LeaseValues:
    paths = list(values_files)
    origin = ", ".join(str(p) for p in paths) if paths else "values"
    return build_lease_values(read_values_files(paths), extra_models, origin=origin)

#!/usr/bin/env python3
"""Generate chart/values.schema.json.

The single source of truth for the values the model fetcher reads (``server.modelRepositories``,
``server.security``, ``lease``) is schemas/values.schema.json: its definitions are copied as they
are. The chart's own keys (images, resources, probes, the model-repository volume...) are
described here. The result is strict: every object refuses unknown keys, so a typo in a value
fails ``helm install`` instead of being ignored. Descriptions of the chart's keys and every
default come from the ``# --`` comments and values of chart/values.yaml.

    python scripts/generate_chart_schema.py           # write chart/values.schema.json
    python scripts/generate_chart_schema.py --check   # exit 1 when the committed file differs
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chart_values_doc import MISSING, documented_values, lookup, write_or_check  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "schemas" / "values.schema.json"
CHART = ROOT / "chart"
TARGET = CHART / "values.schema.json"
DRAFT_07 = "http://json-schema.org/draft-07/schema#"

# Kubernetes names and values --------------------------------------------------------------------

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
HTTP_HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
# Triton's restricted API groups (tritonserver --help), but `health`: the kubelet's probes carry no header.
TRITON_RESTRICTABLE_APIS = ["model-repository", "model-config", "shared-memory", "statistics", "trace", "logging",
                            "metadata", "inference"]
QUANTITY = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$"
DIGEST = r"^$|^sha256:[a-f0-9]{64}$"


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/definitions/{name}"}


def obj(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties, **extra}


def string_map() -> dict[str, Any]:
    return {"type": "object", "additionalProperties": {"type": "string"}}


def integer(minimum: int | None = None, maximum: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def probe(*, readiness: bool = False) -> dict[str, Any]:
    def field(description: str, minimum: int) -> dict[str, Any]:
        return {"description": description, **integer(minimum)}

    properties = {
        "initialDelaySeconds": field("Seconds after the container starts before the first probe.", 0),
        "periodSeconds": field("Seconds between probes.", 1),
        "timeoutSeconds": field("Seconds after which a probe times out.", 1),
        "failureThreshold": field("Consecutive failures that fail the probe.", 1),
    }
    if readiness:
        properties["successThreshold"] = field("Consecutive successes that pass the probe after a failure.", 1)
    return obj(properties)


CHART_DEFINITIONS: dict[str, Any] = {
    "k8sName": {
        "description": "Name of a Kubernetes object (a DNS subdomain name).",
        "type": "string",
        "maxLength": 253,
        "pattern": DNS_SUBDOMAIN,
    },
    "optionalK8sName": {
        "description": "Name of a Kubernetes object, or empty for none.",
        "type": "string",
        "maxLength": 253,
        "pattern": DNS_SUBDOMAIN[:-1] + "|^$",
    },
    "quantity": {
        "description": "A Kubernetes resource quantity (e.g. 500m, 4Gi, 2).",
        "type": ["string", "number"],
        "pattern": QUANTITY,
    },
    "image": obj(
        {
            "repository": {"type": "string", "minLength": 1},
            "tag": {"type": "string"},
            "pullPolicy": {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]},
            "digest": {"type": "string", "pattern": DIGEST},
        },
        required=["repository", "tag", "pullPolicy"],
    ),
    "intOrPercent": {
        "description": "A number, or a percentage of the replicas (e.g. 25%).",
        "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^[0-9]+%$"}],
    },
    "optionalIntOrPercent": {
        "description": "A number, a percentage of the replicas, or empty for none.",
        "anyOf": [ref("intOrPercent"), {"type": "string", "maxLength": 0}],
    },
    "strategy": obj(
        {
            "type": {"type": "string", "enum": ["RollingUpdate", "Recreate"]},
            "rollingUpdate": obj({"maxSurge": ref("intOrPercent"), "maxUnavailable": ref("intOrPercent")}),
        },
        description="Kubernetes DeploymentStrategy; empty for the chart's choice.",
    ),
    "resources": obj(
        {
            "limits": {"type": "object", "additionalProperties": ref("quantity")},
            "requests": {"type": "object", "additionalProperties": ref("quantity")},
        },
        description="Kubernetes ResourceRequirements (limits and requests).",
    ),
    "envFrom": {
        "description": "A list of Kubernetes EnvFromSource.",
        "type": "array",
        "items": obj(
            {
                "prefix": {"type": "string"},
                "configMapRef": {"type": "object"},
                "secretRef": {"type": "object"},
            }
        ),
    },
    "volumes": {"description": "A list of Kubernetes Volume.", "type": "array", "items": {"type": "object", "required": ["name"]}},
    "volumeMounts": {
        "description": "A list of Kubernetes VolumeMount.",
        "type": "array",
        "items": {"type": "object", "required": ["name", "mountPath"]},
    },
    "envVars": {
        "description": "A list of Kubernetes EnvVar.",
        "type": "array",
        "items": obj(
            {
                "name": {"type": "string", "minLength": 1},
                "value": {"type": "string"},
                "valueFrom": {"type": "object"},
            },
            required=["name"],
        ),
    },
    "capabilities": obj(
        {
            "add": {"type": "array", "items": {"type": "string"}},
            "drop": {"type": "array", "items": {"type": "string"}},
        }
    ),
    "seccompProfile": obj(
        {
            "type": {"type": "string", "enum": ["RuntimeDefault", "Localhost", "Unconfined"]},
            "localhostProfile": {"type": "string"},
        },
        required=["type"],
    ),
    "containerSecurityContext": obj(
        {
            "allowPrivilegeEscalation": {"type": "boolean"},
            "appArmorProfile": {"type": "object"},
            "capabilities": ref("capabilities"),
            "privileged": {"type": "boolean"},
            "procMount": {"type": "string"},
            "readOnlyRootFilesystem": {"type": "boolean"},
            "runAsGroup": integer(0),
            "runAsNonRoot": {"type": "boolean"},
            "runAsUser": integer(0),
            "seLinuxOptions": {"type": "object"},
            "seccompProfile": ref("seccompProfile"),
            "windowsOptions": {"type": "object"},
        },
        description="Kubernetes container SecurityContext.",
    ),
    "podSecurityContext": obj(
        {
            "appArmorProfile": {"type": "object"},
            "fsGroup": integer(0),
            "fsGroupChangePolicy": {"type": "string", "enum": ["Always", "OnRootMismatch"]},
            "runAsGroup": integer(0),
            "runAsNonRoot": {"type": "boolean"},
            "runAsUser": integer(0),
            "seLinuxChangePolicy": {"type": "string"},
            "seLinuxOptions": {"type": "object"},
            "seccompProfile": ref("seccompProfile"),
            "supplementalGroups": {"type": "array", "items": integer(0)},
            "supplementalGroupsPolicy": {"type": "string"},
            "sysctls": {"type": "array", "items": {"type": "object"}},
            "windowsOptions": {"type": "object"},
        },
        description="Kubernetes PodSecurityContext.",
    ),
    "toleration": obj(
        {
            "key": {"type": "string"},
            "operator": {"type": "string", "enum": ["Exists", "Equal"]},
            "value": {"type": "string"},
            "effect": {"type": "string", "enum": ["", "NoSchedule", "PreferNoSchedule", "NoExecute"]},
            "tolerationSeconds": {"type": "integer"},
        }
    ),
    "affinity": obj(
        {
            "nodeAffinity": {"type": "object"},
            "podAffinity": {"type": "object"},
            "podAntiAffinity": {"type": "object"},
        },
        description="Kubernetes Affinity.",
    ),
    "port": integer(1, 65535),
    "networkPolicyPeer": obj(
        {
            "podSelector": {"type": "object"},
            "namespaceSelector": {"type": "object"},
            "ipBlock": obj({"cidr": {"type": "string"}, "except": {"type": "array", "items": {"type": "string"}}},
                           required=["cidr"]),
        },
        description="Kubernetes NetworkPolicyPeer.",
        minProperties=1,
    ),
}


def chart_properties() -> dict[str, Any]:
    """The chart's own keys (everything but server and lease)."""
    return {
        "nameOverride": {"type": "string", "maxLength": 63},
        "fullnameOverride": {"type": "string", "maxLength": 63},
        "kubeVersionOverride": {"type": "string", "pattern": r"^$|^v?[0-9]+\.[0-9]+(\.[0-9]+)?([-+].*)?$"},
        "global": {
            "description": "Values a parent chart shares with its subcharts (Helm's `global`); accepted so this chart can be a subchart, not read.",
            "type": "object",
        },
        "replicaCount": integer(0),
        "strategy": ref("strategy"),
        "progressDeadlineSeconds": integer(0),
        "deploymentAnnotations": string_map(),
        "triton": obj(
            {
                "image": ref("image"),
                "extraArgs": {"type": "array", "items": {"type": "string"}},
                "env": ref("envVars"),
                "envFrom": ref("envFrom"),
                "extraVolumeMounts": ref("volumeMounts"),
                "homeSizeLimit": {"anyOf": [ref("quantity"), {"type": "string", "maxLength": 0}]},
                "preStopSleepSeconds": integer(0),
                "ports": obj(
                    {"http": ref("port"), "grpc": ref("port"), "metrics": ref("port")},
                    required=["http", "grpc", "metrics"],
                ),
                "gpus": integer(0),
                "resources": ref("resources"),
                "shmSize": {"anyOf": [ref("quantity"), {"type": "string", "maxLength": 0}]},
                "livenessProbe": probe(),
                "readinessProbe": probe(readiness=True),
                "startupProbe": probe(),
                "securityContext": ref("containerSecurityContext"),
            }
        ),
        "fetcher": obj(
            {
                "mode": {"type": "string", "enum": ["init", "sidecar"]},
                "sidecar": obj(
                    {
                        "pollSeconds": integer(1),
                        "tritonTimeoutSeconds": integer(1),
                        "retrySeconds": integer(1),
                        "startupProbe": probe(),
                        "modelControl": obj(
                            {
                                "restrictedApis": {
                                    "type": "array",
                                    "uniqueItems": True,
                                    "items": {"type": "string", "enum": TRITON_RESTRICTABLE_APIS},
                                    "contains": {"const": "model-repository"},
                                },
                                "header": {"type": "string", "pattern": HTTP_HEADER_NAME, "maxLength": 128},
                                "secret": obj(
                                    {
                                        "name": ref("optionalK8sName"),
                                        "key": {"type": "string", "pattern": r"^[-._a-zA-Z0-9]+$", "maxLength": 253},
                                    },
                                    required=["name", "key"],
                                ),
                            },
                            required=["restrictedApis", "header", "secret"],
                        ),
                    }
                ),
                "image": ref("image"),
                "fetchBudgetSeconds": integer(1),
                "progressIntervalSeconds": integer(0),
                "logFormat": {"type": "string", "enum": ["text", "json"]},
                "metrics": obj(
                    {
                        "enabled": {"type": "boolean"},
                        "port": ref("port"),
                        "scrapeAnnotations": {"type": "boolean"},
                        "podMonitor": obj(
                            {
                                "enabled": {"type": "boolean"},
                                "interval": {"type": "string", "pattern": r"^$|^([0-9]+(ms|s|m|h))+$"},
                                "scrapeTimeout": {"type": "string", "pattern": r"^$|^([0-9]+(ms|s|m|h))+$"},
                                "labels": string_map(),
                            }
                        ),
                    }
                ),
                "extraArgs": {"type": "array", "items": {"type": "string"}},
                "env": ref("envVars"),
                "envFrom": ref("envFrom"),
                "extraVolumeMounts": ref("volumeMounts"),
                "resources": ref("resources"),
                "caBundle": obj(
                    {
                        "configMapName": ref("optionalK8sName"),
                        "key": {"type": "string", "pattern": r"^[-._a-zA-Z0-9]+$", "maxLength": 253},
                    }
                ),
                "securityContext": ref("containerSecurityContext"),
                "cache": obj(
                    {
                        "enabled": {"type": "boolean"},
                        "type": {"type": "string", "enum": ["existingClaim", "hostPath"]},
                        "existingClaim": obj({"claimName": ref("optionalK8sName")}),
                        "hostPath": obj({"path": {"type": "string", "pattern": "^/"}}),
                        "maxSize": {"type": "string", "pattern": r"^[0-9]+([KMGT]i)?$"},
                        "mountPath": {"type": "string", "pattern": "^/"},
                    }
                ),
            }
        ),
        "modelRepository": obj(
            {
                "type": {"type": "string", "enum": ["emptyDir", "ephemeral", "existingClaim"]},
                "emptyDir": obj(
                    {"sizeLimit": {"anyOf": [ref("quantity"), {"type": "string", "maxLength": 0}]}}
                ),
                "ephemeral": obj(
                    {
                        "storageClassName": {"type": "string"},
                        "size": ref("quantity"),
                        "accessModes": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "string",
                                "enum": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"],
                            },
                        },
                    }
                ),
                "existingClaim": obj({"claimName": ref("optionalK8sName")}),
            }
        ),
        "networkPolicy": obj(
            {
                "enabled": {"type": "boolean"},
                "inferenceFrom": {"type": "array", "items": ref("networkPolicyPeer")},
                "metricsFrom": {"type": "array", "items": ref("networkPolicyPeer")},
            }
        ),
        "serviceAccount": obj(
            {
                "create": {"type": "boolean"},
                "name": ref("optionalK8sName"),
                "annotations": string_map(),
            }
        ),
        "service": obj(
            {
                "type": {"type": "string", "enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                "annotations": string_map(),
                "headless": obj({"enabled": {"type": "boolean"}}),
            }
        ),
        "metrics": obj(
            {
                "serviceMonitor": obj(
                    {
                        "enabled": {"type": "boolean"},
                        "interval": {"type": "string", "pattern": r"^$|^([0-9]+(ms|s|m|h))+$"},
                        "scrapeTimeout": {"type": "string", "pattern": r"^$|^([0-9]+(ms|s|m|h))+$"},
                        "labels": string_map(),
                    }
                )
            }
        ),
        "podDisruptionBudget": obj(
            {
                "enabled": {"type": "boolean"},
                "minAvailable": ref("optionalIntOrPercent"),
                "maxUnavailable": ref("optionalIntOrPercent"),
            }
        ),
        "imagePullSecrets": {
            "type": "array",
            "items": obj({"name": ref("k8sName")}, required=["name"]),
        },
        "podAnnotations": string_map(),
        "podLabels": string_map(),
        "podSecurityContext": ref("podSecurityContext"),
        "nodeSelector": string_map(),
        "tolerations": {"type": "array", "items": ref("toleration")},
        "affinity": ref("affinity"),
        "priorityClassName": {"type": "string"},
        "runtimeClassName": ref("optionalK8sName"),
        "topologySpreadConstraints": {
            "type": "array",
            "items": {"type": "object", "required": ["maxSkew", "topologyKey", "whenUnsatisfiable"]},
        },
        "extraVolumes": ref("volumes"),
        "terminationGracePeriodSeconds": integer(0),
        "tests": obj({"image": ref("image")}),
    }


def annotate(schema: dict[str, Any], values: dict[str, Any], docs: dict[str, str], path: str = "") -> None:
    """Add the description and default of each chart key from values.yaml, depth first."""
    for key, prop in schema.get("properties", {}).items():
        key_path = f"{path}{key}"
        if "$ref" not in prop:
            if key_path in docs:
                prop["description"] = docs[key_path]
            default = lookup(values, key_path)
            if default is not MISSING and not (isinstance(default, dict) and "properties" in prop):
                prop["default"] = default
        annotate(prop, values, docs, key_path + ".")


def generate() -> dict[str, Any]:
    source = json.loads(SOURCE.read_text(encoding="utf-8"))
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    docs = {doc.path: doc.description for doc in documented_values(CHART / "values.yaml")}

    definitions = copy.deepcopy(source["definitions"])
    clash = set(definitions) & set(CHART_DEFINITIONS)
    if clash:
        raise SystemExit(f"definitions defined twice: {sorted(clash)}")
    definitions.update(copy.deepcopy(CHART_DEFINITIONS))

    fetcher_server = source["properties"]["server"]["properties"]
    properties: dict[str, Any] = {
        "server": obj(copy.deepcopy(fetcher_server)),
        "lease": copy.deepcopy(source["properties"]["lease"]),
    }
    properties.update(chart_properties())
    schema = {
        "$schema": DRAFT_07,
        "title": "Values of the triton-lease chart",
        "description": (
            "Generated by scripts/generate_chart_schema.py from schemas/values.schema.json "
            "(the model fetcher's values) and the chart's own keys; do not edit by hand."
        ),
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "definitions": definitions,
    }
    annotate(schema, values, docs)
    return schema


def render() -> str:
    return json.dumps(generate(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the committed schema differs")
    args = parser.parse_args(argv)
    return write_or_check(TARGET, render(), check=args.check, make_target="chart-schema")


if __name__ == "__main__":
    sys.exit(main())

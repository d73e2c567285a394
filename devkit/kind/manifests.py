"""Manifests and values for `make kind-e2e` (devkit/kind/kind-e2e.sh), generated from the demo's models.

    python -m devkit.kind.manifests OUT_DIR

writes OUT_DIR/sources.yaml (an nginx that serves a model zip only with the right Authorization
header, and a hostPath-backed PersistentVolumeClaim seeded with a model by a Job) and
OUT_DIR/values.yaml (the chart's values: a CPU Triton, the kind-loaded fetcher image, an https
secret, the volume claim and a lease naming both models).
"""

from __future__ import annotations

import base64
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from devkit.models import model_files, zip_model

NAMESPACE = "models"
TOKEN = "Bearer kind-demo-token"  # the script writes it to a file and makes the Secret from it
SECRET = "kind-model-pull"
CLAIM = "demo-model-claim"
FETCHER_TAG = "kind"
MODEL_SERVER = f"model-server.{NAMESPACE}.svc.cluster.local"

NGINX_CONF = """\
server {
    listen 8080;
    location /models/ {
        if ($http_authorization != "%s") { return 401; }
        alias /srv/models/;
    }
}
""" % TOKEN


def _zip_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "https_model.zip"
        zip_model(path, model_files("https_model", addend=1.0), top_folder="https_model")
        return path.read_bytes()


def sources() -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": "model-server"}
    volume_files = model_files("volume_model", addend=100.0)
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "model-server", "namespace": NAMESPACE},
         "data": {"default.conf": NGINX_CONF},
         "binaryData": {"https_model.zip": base64.b64encode(_zip_bytes()).decode()}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "model-server", "namespace": NAMESPACE},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels},
             "spec": {"containers": [{
                 "name": "nginx", "image": "nginxinc/nginx-unprivileged:1.27-alpine",
                 "ports": [{"containerPort": 8080}],
                 "volumeMounts": [
                     {"name": "files", "mountPath": "/etc/nginx/conf.d/default.conf", "subPath": "default.conf"},
                     {"name": "files", "mountPath": "/srv/models/https_model.zip", "subPath": "https_model.zip"},
                 ]}],
                 "volumes": [{"name": "files", "configMap": {"name": "model-server"}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "model-server", "namespace": NAMESPACE},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "demo-models"},
         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                  "persistentVolumeReclaimPolicy": "Delete",
                  "claimRef": {"namespace": NAMESPACE, "name": CLAIM},
                  "hostPath": {"path": "/var/local/demo-models", "type": "DirectoryOrCreate"}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": CLAIM, "namespace": NAMESPACE},
         "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": "demo-models",
                  "resources": {"requests": {"storage": "1Gi"}}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "volume-model", "namespace": NAMESPACE},
         "data": {"config.pbtxt": volume_files["config.pbtxt"].decode(), "model.py": volume_files["1/model.py"].decode()}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "seed-volume-model", "namespace": NAMESPACE},
         "spec": {"backoffLimit": 2, "template": {"spec": {
             "restartPolicy": "Never",
             "containers": [{
                 "name": "seed", "image": "busybox:1.36",
                 "command": ["sh", "-c", "mkdir -p /claim/volume_model/1 && "
                             "cp /files/config.pbtxt /claim/volume_model/ && "
                             "cp /files/model.py /claim/volume_model/1/ && chmod -R a+rX /claim"],
                 "volumeMounts": [{"name": "claim", "mountPath": "/claim"}, {"name": "files", "mountPath": "/files"}]}],
             "volumes": [{"name": "claim", "persistentVolumeClaim": {"claimName": CLAIM}},
                         {"name": "files", "configMap": {"name": "volume-model"}}]}}}},
    ]


def values() -> dict[str, Any]:
    return {
        "server": {"modelRepositories": {
            # Plain http inside the cluster: allowPlainHttp lets the secret go to a non-loopback host.
            "https": [{"secretName": SECRET, "targetUri": f"{MODEL_SERVER}/models", "allowPlainHttp": True}],
            "volumes": [{"repositoryName": "demo-volume", "volumeClaimName": CLAIM}],
        }},
        "lease": {"models": [
            f"name=https_model,uri=http://{MODEL_SERVER}/models/https_model.zip",
            "name=volume_model,uri=model://demo-volume/volume_model",
        ]},
        "fetcher": {"image": {"tag": FETCHER_TAG, "pullPolicy": "Never"}},
        "triton": {"gpus": 0, "shmSize": "256Mi",
                   "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "4Gi"}}},
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m devkit.kind.manifests OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    (out / "sources.yaml").write_text(yaml.safe_dump_all(sources(), sort_keys=False))
    (out / "values.yaml").write_text(yaml.safe_dump(values(), sort_keys=False))
    (out / SECRET).write_text(TOKEN)  # for kubectl create secret generic SECRET --from-file SECRET
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

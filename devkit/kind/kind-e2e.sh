#!/usr/bin/env bash
# make kind-e2e: the chart on a throwaway kind cluster, for machines that have Docker, kind, kubectl
# and helm. Creates the cluster, builds and loads the fetcher image, serves one model zip from an
# in-cluster nginx (behind an Authorization secret) and one from a hostPath-backed claim, installs
# the chart with a CPU Triton, waits for the models, runs `helm test` and one inference per model.
#
#   KIND_CLUSTER=triton-lease-e2e  cluster name          KEEP_CLUSTER=1  do not delete it at the end
#   PYTHON=.venv/bin/python        python with the devkit's dependencies (make venv)
# Pulling nvcr.io/nvidia/tritonserver (several GB) takes most of the time on a first run.
set -euo pipefail

cd "$(dirname "$0")/../.."
CLUSTER="${KIND_CLUSTER:-triton-lease-e2e}"
PYTHON="${PYTHON:-.venv/bin/python}"
NAMESPACE=models
RELEASE=kind-demo
FULLNAME="${RELEASE}-triton-lease"
WORK="$(mktemp -d)"
FORWARD_PID=""

log() { printf '==> %s\n' "$*"; }

cleanup() {
  if [[ -n "$FORWARD_PID" ]]; then kill "$FORWARD_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
  if [[ "${KEEP_CLUSTER:-0}" != 1 ]]; then
    log "deleting the kind cluster $CLUSTER (KEEP_CLUSTER=1 keeps it)"
    kind delete cluster --name "$CLUSTER" || true
  fi
}

for tool in docker kind kubectl helm curl; do
  command -v "$tool" >/dev/null || { echo "kind-e2e needs $tool on PATH" >&2; exit 2; }
done
docker info >/dev/null 2>&1 || { echo "kind-e2e needs a running Docker engine" >&2; exit 2; }

log "creating the kind cluster $CLUSTER"
kind create cluster --name "$CLUSTER" --wait 120s
trap cleanup EXIT

log "building the fetcher image and loading it into the cluster"
docker build -f Dockerfile.fetcher -t triton-model-fetcher:kind .
kind load docker-image triton-model-fetcher:kind --name "$CLUSTER"

log "generating the demo sources and values"
"$PYTHON" -m devkit.kind.manifests "$WORK"
kubectl create namespace "$NAMESPACE"
(cd "$WORK" && kubectl -n "$NAMESPACE" create secret generic kind-model-pull --from-file kind-model-pull)
kubectl apply -f "$WORK/sources.yaml"
kubectl -n "$NAMESPACE" rollout status deployment/model-server --timeout=300s
kubectl -n "$NAMESPACE" wait --for=condition=complete job/seed-volume-model --timeout=300s

log "installing the chart (CPU Triton, the lease: https_model and volume_model)"
helm install "$RELEASE" chart -n "$NAMESPACE" -f "$WORK/values.yaml"
if ! kubectl -n "$NAMESPACE" rollout status "deployment/$FULLNAME" --timeout=1800s; then
  kubectl -n "$NAMESPACE" describe pods -l "app.kubernetes.io/instance=$RELEASE" || true
  kubectl -n "$NAMESPACE" logs -l "app.kubernetes.io/instance=$RELEASE" -c model-fetcher --tail=50 || true
  exit 1
fi
kubectl -n "$NAMESPACE" logs "deployment/$FULLNAME" -c model-fetcher

log "helm test: every leased model reports ready"
helm test "$RELEASE" -n "$NAMESPACE" --logs

log "one inference per model"
kubectl -n "$NAMESPACE" port-forward "service/$FULLNAME" 18000:8000 >"$WORK/port-forward.log" 2>&1 &
FORWARD_PID=$!
for _ in $(seq 1 60); do
  curl -fsS http://127.0.0.1:18000/v2/health/ready >/dev/null 2>&1 && break
  sleep 1
done
for model in https_model volume_model; do
  curl -fsS -X POST "http://127.0.0.1:18000/v2/models/$model/infer" -H 'Content-Type: application/json' \
    -d '{"inputs":[{"name":"INPUT0","shape":[4],"datatype":"FP32","data":[1,2,3,4]}]}'
  echo
done
log "kind-e2e passed"

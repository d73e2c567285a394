# Entry point for people: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The helm and kubectl CLIs come into $(BIN) with the rest (pinned and checked: scripts/install_helm.py).
$(STAMP): pyproject.toml scripts/install_helm.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/python scripts/install_helm.py
	@touch $@

.PHONY: venv
venv: $(STAMP) ## Create the virtual environment with the fetcher, the test tools, helm and kubectl

# make template VALUES=values.yaml LEASE=lease-a.yaml: `helm template` as a user would run it.
VALUES ?=
LEASE ?=
RELEASE ?= $(if $(LEASE),$(basename $(notdir $(LEASE))),lease)
NAMESPACE ?= models
KUBE_VERSION ?=
HELM_ARGS ?=

.PHONY: template
template: $(STAMP) ## Render the chart for review (VALUES=values.yaml LEASE=lease-a.yaml [KUBE_VERSION=1.30.0] [HELM_ARGS=...])
	@$(BIN)/helm template $(RELEASE) chart --namespace $(NAMESPACE) $(addprefix -f ,$(VALUES) $(LEASE)) \
	  $(if $(KUBE_VERSION),--kube-version $(KUBE_VERSION)) $(HELM_ARGS)

.PHONY: demo
demo: $(STAMP) ## The main job: serve sample models locally, fetch them, serve them with real Triton
	$(BIN)/python -m devkit.demo

.PHONY: kind-e2e
kind-e2e: $(STAMP) ## Needs Docker and kind (helm, kubectl: .venv/bin): the chart with a CPU Triton on a throwaway kind cluster
	PATH="$(abspath $(BIN)):$$PATH" PYTHON=$(BIN)/python devkit/kind/kind-e2e.sh

.PHONY: test
test: $(STAMP) image-debs ## Run the whole test suite (as root it installs podman first, for the image tests)
	$(BIN)/pytest $(PYTEST_ARGS)

# Debian packages of the image tests (tests/test_image.py): podman with runc builds Dockerfile.fetcher,
# debootstrap makes its stand-in base image. Installed only when running as root; otherwise those
# tests skip and say why. apt-get update runs only when the install fails without it.
.PHONY: image-debs
image-debs: ## As root: install podman, runc and debootstrap when missing (for the image tests)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; \
	  command -v podman >/dev/null 2>&1 || missing="$$missing podman"; \
	  command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || missing="$$missing runc"; \
	  command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing="$$missing debootstrap"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing \
	    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; } \
	    || echo "could not install$$missing: the image tests will skip"; \
	  fi; \
	fi

.PHONY: image
image: $(STAMP) image-debs ## Build Dockerfile.fetcher with podman on a locally made Debian base (BASE_IMAGE=... for another)
	$(BIN)/python -m devkit.image $(if $(BASE_IMAGE),--base $(BASE_IMAGE))

.PHONY: kill-test
kill-test: $(STAMP) ## The kill test at full scale: a 4 GiB model killed 20 times, HTTPS zip and S3 (about 13 GiB of /tmp)
	KILL_TEST_MIB=4096 KILL_TEST_KILLS=20 $(BIN)/pytest tests/test_kill_resume.py -s $(PYTEST_ARGS)

.PHONY: chart-schema
chart-schema: $(STAMP) ## Regenerate chart/values.schema.json from schemas/ and chart/values.yaml
	$(BIN)/python scripts/generate_chart_schema.py

.PHONY: chart-docs
chart-docs: $(STAMP) ## Regenerate the values table of chart/README.md from chart/values.yaml
	$(BIN)/python scripts/generate_chart_readme.py

BENCH_STAMP := $(VENV)/.bench-installed
BENCH_ARGS ?=

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e '.[test,bench]'
	@touch $@

# Debian packages of the benchmark: nginx-light (HTTPS with ranges), curl and unzip (peers).
# apt-get update runs only when the install fails without it.
.PHONY: bench-debs
bench-debs:
	@missing=""; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	command -v unzip >/dev/null 2>&1 || missing="$$missing unzip"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing \
	  || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; }; \
	fi

.PHONY: bench
bench: $(BENCH_STAMP) bench-debs ## Benchmark the fetcher against s5cmd, aws, kserve-storage, curl (BENCH_ARGS='--scale 0.05 --runs 1')
	$(BIN)/python -m bench $(BENCH_ARGS)

.PHONY: clean
clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info

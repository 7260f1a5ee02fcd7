# GreenShard — `make help` lists the targets.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

PYTHON_BOOTSTRAP ?= python3
VENV ?= .venv
PY ?= $(VENV)/bin/python
PYTEST_ARGS ?=

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	  /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv with GreenShard and its dev tools (pinned by constraints.txt).

.PHONY: lint
lint: venv ## ruff, mypy (strict) and the import-linter layer contracts.
	$(VENV)/bin/ruff check operator tests
	$(VENV)/bin/ruff format --check operator tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	bash hack/sync-chart-crds.sh --check

.PHONY: fmt
fmt: venv ## Format and autofix with ruff.
	$(VENV)/bin/ruff format operator tests
	$(VENV)/bin/ruff check --fix operator tests

.PHONY: test-unit
test-unit: venv tools ## Fast unit tests only (helm template needs the built helm).
	$(PY) -m pytest -m "not slow and not e2e" $(PYTEST_ARGS)

.PHONY: test
test: venv lint tools ## The whole suite: lint, unit, slow (qsim) and e2e (local control plane).
	$(PY) -m pytest $(PYTEST_ARGS)

##@ Try it

.PHONY: plan-example
plan-example: venv ## Plan the example deployment with `greenshard plan` (no cluster needed).
	$(VENV)/bin/greenshard plan -f crds/samples/llama-70b.yaml --nodes examples/nodes.yaml \
	  --profile crds/samples/gridprofile.yaml --hour 12

.PHONY: demo
demo: venv tools ## Local cluster with a real node, the image, the chart: operator + extender as pods, sample Ready.
	bash hack/demo.sh

.PHONY: demo-down
demo-down: ## Stop the demo's cluster and real node; nothing is left behind.
	bash hack/demo.sh down

.PHONY: run
run: venv ## Run the operator against the current KUBECONFIG.
	$(VENV)/bin/greenshard run --log-format console

.PHONY: chart-crds
chart-crds: ## Copy crds/*.yaml into the Helm chart (a test fails on drift).
	bash hack/sync-chart-crds.sh

.PHONY: crd-template
crd-template: venv tools ## Regenerate spec.template (PodTemplateSpec) from the local control plane's OpenAPI.
	bash hack/cluster.sh status >/dev/null || bash hack/cluster.sh up
	$(PY) hack/gen-pod-template-schema.py
	bash hack/sync-chart-crds.sh

.PHONY: bench-operator
bench-operator: venv tools ## apply -> Ready on 50 KWOK nodes; 20 deployments on 500 nodes.
	$(PY) hack/bench_operator.py

.PHONY: bench-observe
bench-observe: venv ## One pass's observe per InferenceDeployment at 5000 nodes, cached and not (no cluster).
	$(PY) hack/bench_observe.py

.PHONY: bench-queue
bench-queue: venv ## A converged controller pass at 5000 nodes x 200 deployments: every deployment vs the queue (no cluster).
	$(PY) hack/bench_queue.py

.PHONY: bench-qokit
bench-qokit: venv ## Our QAOA simulators beside QOKit's (its own venv, its C backend built here).
	$(PY) hack/bench_qokit.py

.PHONY: chaos
chaos: venv tools ## Fault injection, full numbers: 50 operator SIGKILLs, 10 apiserver + 3 etcd restarts, injected API errors.
	rm -f hack/.state/chaos/results.jsonl
	GREENSHARD_CHAOS=full $(PY) -m pytest tests/e2e/test_chaos.py -q -s -o timeout=3600 $(PYTEST_ARGS)
	@cat hack/.state/chaos/results.jsonl

.PHONY: soak
soak: venv tools ## Soak, full numbers: 5000 KWOK nodes, 200 deployments, then 5 quiet minutes (writes, RSS).
	rm -f hack/.state/chaos/results.jsonl
	GREENSHARD_CHAOS=full $(PY) -m pytest tests/e2e/test_soak.py -q -s -o timeout=7200 $(PYTEST_ARGS)
	@cat hack/.state/chaos/results.jsonl

.PHONY: bench
bench: venv ## QAOA and classical solver benchmark (prints a table).
	$(VENV)/bin/greenshard bench

##@ Images (built here with buildah: no registry needed; root)

.PHONY: image
image: ## Build the operator image from the Dockerfile (Debian base by debootstrap); load it into a running real node.
	bash hack/build-images.sh greenshard
	@if [[ -s hack/.state/cluster/real-node ]]; then bash hack/cluster.sh load greenshard; fi

.PHONY: images
images: tools ## Build every image: greenshard, pipeline-probe, pause, coredns (and the Debian base).
	bash hack/build-images.sh all

-include hack/tools.mk

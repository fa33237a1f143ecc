# pulling-agent — developer and operator entry points.
#   make run     run the agent on the embedded SQLite queue with demo documents
#   make test    set everything up on a fresh machine, lint, and run every test tier
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

NAMESPACE ?= default
RELEASE ?= pulling-agent
REASON ?=

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

.PHONY: install
install: $(STAMP) ## Create .venv and install the package with its pinned dependencies

.PHONY: run
run: install ## Run the agent on sqlite:///pulling-agent.db, seeded with demo documents
	$(BIN)/pulling-agent run --seed 1000 --log-format text

.PHONY: tools
tools: ## Build pinned helm, ct, helm-docs, kind, kubectl, the Kubernetes components (control plane, kubelet, kube-scheduler, kube-proxy), etcd, prometheus and promtool into ./bin
	tools/build-tools.sh

.PHONY: system-deps
system-deps: ## Install the Debian packages the tests use (PostgreSQL, openssl, containerd, runc, CNI plugins, docker.io, debootstrap), when root
	tools/system-deps.sh

.PHONY: lint
lint: install ## ruff, mypy --strict, import layers (import-linter), shellcheck, helm lint, ct lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/shellcheck control/*.sh tools/*.sh .ci/run
	@[ -x bin/helm ] && [ -x bin/ct ] || { echo "lint: bin/helm or bin/ct missing, run 'make tools'" >&2; exit 1; }
	$(MAKE) --no-print-directory lint-chart

.PHONY: lint-chart
lint-chart: install ## helm lint (defaults and each ci/*-values.yaml) and ct lint
	bin/helm lint --strict charts/pulling-agent
	for f in charts/pulling-agent/ci/*-values.yaml; do bin/helm lint --strict charts/pulling-agent -f "$$f"; done
	# ct runs helm, yamllint and yamale from PATH.
	PATH="$(CURDIR)/bin:$(CURDIR)/$(BIN):$$PATH" bin/ct lint --config ct.yaml

.PHONY: docs-chart
docs-chart: ## Regenerate charts/pulling-agent/README.md from values.yaml comments (helm-docs)
	bin/helm-docs --chart-search-root charts/pulling-agent --skip-version-footer

.PHONY: dashboard
dashboard: install ## Regenerate charts/pulling-agent/dashboards/pulling-agent.json (grafana-foundation-sdk)
	$(BIN)/python tools/grafana_dashboard.py

.PHONY: test
test: install system-deps tools lint ## Everything: set-up, lint, unit, integration, chart and e2e tiers
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: install ## Unit tests only (seconds)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

.PHONY: test-integration
test-integration: install ## The agent as a real process: signals, files, SQLite, PostgreSQL
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

.PHONY: test-chart
test-chart: install tools ## The chart with the real helm and ct
	$(BIN)/pytest tests/chart $(PYTEST_ARGS)

.PHONY: test-e2e
test-e2e: install tools ## Through the Kubernetes API (PULLING_AGENT_CLUSTER=controlplane|kind|existing)
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	touch $@

.PHONY: bench
bench: install $(BENCH_STAMP) tools ## Print the performance figures, one JSON object a line (BENCH_ARGS="--only drain")
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

.PHONY: image
image: ## Build the agent image with no registry (a local debootstrap base where the public one cannot be pulled)
	tools/build-image.sh

.PHONY: cluster-up
cluster-up: install system-deps tools ## Start a one-node Kubernetes cluster here (root) with the agent image loaded; prints the KUBECONFIG line
	$(BIN)/python -m testkit.clusters up

.PHONY: cluster-down
cluster-down: install ## Stop the cluster-up cluster and remove its mounts, iptables chains, bridge and cgroups
	$(BIN)/python -m testkit.clusters down

.PHONY: k8s-pause
k8s-pause: ## Pause every replica (ConfigMap + signals, verified); NAMESPACE, REASON
	NAMESPACE=$(NAMESPACE) control/control-agent.sh pause --release $(RELEASE) $(if $(REASON),--reason "$(REASON)")

.PHONY: k8s-resume
k8s-resume: ## Resume every replica; NAMESPACE, REASON
	NAMESPACE=$(NAMESPACE) control/control-agent.sh resume --release $(RELEASE) $(if $(REASON),--reason "$(REASON)")

.PHONY: k8s-status
k8s-status: ## Per-pod state, health files, ConfigMap state and recent pause/resume logs
	NAMESPACE=$(NAMESPACE) control/control-agent.sh status --release $(RELEASE)

.PHONY: k8s-control-status
k8s-control-status: k8s-status ## Alias used by the original agent's docs

.PHONY: clean
clean: ## Remove build and test leftovers (not the tool cache)
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .import_linter_cache pulling-agent.db*

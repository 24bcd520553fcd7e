# Everyday commands for this stack: `make help` lists them. Read by GNU make.
# Change here: how commands run. Settings belong in .env, Airflow tuning in config/airflow.cfg.
# OFFLINE=1 (on any target) uses the offline kit's images from offline/images.env, building them
# when missing; EXTRA_CA_BUNDLE=/path/to/ca.pem is the CA bundle image builds trust for PyPI
# (default: this machine's system bundle, so a TLS-intercepting proxy the host trusts works).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
N ?= 1
WAIT_TIMEOUT ?= 900

ifeq ($(OFFLINE),1)
include offline/images.env
export $(shell sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/\1/p' offline/images.env)
export OFFLINE
endif
EXTRA_CA_BUNDLE ?= $(shell bash offline/host-ca-bundle)
export EXTRA_CA_BUNDLE

COMPOSE := docker compose

.PHONY: help env check-env preflight images-in-env up down ps logs scale test test-unit test-integration lint clean offline-images tools lock image build-inputs dashboards bench backup restore

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-18s %s\n", $$1, $$2}'
	@echo "  Options: OFFLINE=1 (offline kit images), EXTRA_CA_BUNDLE=ca.pem, N=<workers> for scale"

env: ## Create .env with fresh random secrets (never overwrites an existing one)
	@$(PYTHON) scripts/generate_env.py

check-env: env ## Check the sizes, ports and addresses in .env (make up runs it first)
	@$(PYTHON) scripts/check_env.py .env

offline-images: ## Build (or reuse) the offline kit's stand-in images
	@bash offline/build-images.sh

tools: ## Build the Go tools the unit tests run (promtool, statsd_exporter), cached
	@bash offline/build-tools.sh

extra-ca-bundle.pem: FORCE
	@if [ -n "$${EXTRA_CA_BUNDLE:-}" ]; then cp "$$EXTRA_CA_BUNDLE" $@; else rm -f $@; fi
FORCE:

# What any build of the Airflow image needs first: the optional CA bundle, and offline the base image.
build-inputs: extra-ca-bundle.pem $(if $(filter 1,$(OFFLINE)),offline-images)

preflight: ## Check Docker, Compose, memory and disk before anything is built (make up runs it)
	@$(PYTHON) scripts/preflight.py

# Plain `docker compose` must address the stack and use the images make uses: both are recorded in .env.
images-in-env: env
	@$(PYTHON) scripts/record_images.py $(if $(filter 1,$(OFFLINE)),--offline)

image: env build-inputs images-in-env ## Build the Airflow image
	@$(COMPOSE) --profile grafana build

up: preflight check-env image ## Start the stack, wait until every service is healthy, print the URLs
	@# Before compose, so Docker does not create it as root.
	@(umask 077; mkdir -p "$$(sed -n 's/^BACKUP_DIR=//p' .env | tail -n 1 | grep . || echo backups)")
	@$(COMPOSE) up -d --remove-orphans
	@$(PYTHON) scripts/wait_healthy.py --timeout $(WAIT_TIMEOUT)
	@$(PYTHON) scripts/print_urls.py

down: env ## Stop and remove the stack's containers (volumes are kept)
	@$(COMPOSE) --profile grafana down --remove-orphans

ps: env ## Show the stack's containers and their health
	@$(COMPOSE) --profile grafana ps -a

logs: env ## Follow the logs of every service (S=<service> for one)
	@$(COMPOSE) --profile grafana logs -f --tail=200 $(S)

scale: check-env ## Run N Celery workers: make scale N=3 (only the workers; nothing else restarts)
	@$(COMPOSE) up -d --no-recreate --no-deps --scale airflow-worker=$(N) airflow-worker
	@$(PYTHON) scripts/wait_healthy.py --timeout $(WAIT_TIMEOUT)

$(VENV)/.installed: requirements.lock requirements-test.txt
	@$(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.lock -r requirements-test.txt
	@touch $@

# No bytecode written next to the checkout's DAG files by the tests that import them.
PYTEST := PYTHONDONTWRITEBYTECODE=1 $(VENV)/bin/pytest

test-unit: $(VENV)/.installed tools ## Unit tests: no running stack needed, on every core
	@$(PYTEST) -n auto tests/unit

test-integration: $(VENV)/.installed build-inputs ## Integration tests against a real stack (stackkit)
	@$(PYTEST) tests/integration

test: $(VENV)/.installed tools build-inputs ## All tests: unit, then (only if they pass) integration against a real stack
	@$(PYTEST) -n auto tests/unit
	@$(PYTEST) tests/integration

SHELL_SCRIPTS := scripts/*.sh .ci/run .ci/install-docker offline/*.sh offline/debian-mirror \
	offline/*/docker-entrypoint.sh offline/airflow/entrypoint offline/base/customize-rootfs offline/base/install-packages

lint: $(VENV)/.installed ## ruff (lint and format check) and shellcheck
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@command -v shellcheck >/dev/null || { echo "shellcheck is not installed (apt-get install shellcheck)"; exit 1; }
	@shellcheck -x $(SHELL_SCRIPTS) && echo "shellcheck: all clean"

bench: $(VENV)/.installed build-inputs ## Benchmark: tuned, Airflow defaults, the official compose (~75 min; BENCH_ARGS=--quick ~12 min)
	@$(VENV)/bin/python -m bench $(BENCH_ARGS)

backup: ## Back up the metadata and demo databases into backups/ (retention: BACKUP_RETENTION_DAYS in .env)
	@bash scripts/backup.sh

restore: ## Restore a backup into the running stack: make restore FILE=backups/airflow-<stamp>.dump
	@test -n "$(FILE)" || { echo "usage: make restore FILE=backups/<db>-<UTC stamp>.dump" >&2; exit 1; }
	@PYTHON=$(PYTHON) WAIT_TIMEOUT=$(WAIT_TIMEOUT) bash scripts/restore.sh "$(FILE)"

dashboards: ## Regenerate grafana/dashboards/**.json from grafana/dashboards_src (edit the Python, not the JSON)
	@$(PYTHON) grafana/generate.py

lock: ## Re-resolve requirements.in into requirements.lock (needs uv)
	@uv pip compile requirements.in --universal --python-version 3.11 --no-header --annotation-style line -o requirements.lock

clean: env ## Remove the stack with its volumes, the test venv and build leftovers
	@$(COMPOSE) --profile grafana down --volumes --remove-orphans
	@rm -rf $(VENV) extra-ca-bundle.pem .pytest_cache .ruff_cache

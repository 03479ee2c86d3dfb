# balans - developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# pytest-xdist workers of `make test` (each with its own embedded PostgreSQL and NATS); 0 runs
# the suite in one process
PYTEST_WORKERS ?= 2

.DEFAULT_GOAL := help

.PHONY: help setup os-packages run test lint format bench fuzz clean chaos

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
	$(UV) sync --locked --python $(PYTHON)
	@touch $@

setup: $(VENV)/.synced ## Create .venv with every package (uv, from uv.lock)

os-packages: ## Install the OS packages run and test need (python3-venv, chromium, prometheus) as root; else say which
	@PYTHON=$(PYTHON) scripts/os-packages.sh

run: os-packages setup ## Run the whole system on a simulated city (portal on http://127.0.0.1:8000)
	@echo "portal demo logins (created by the api in development): operator / operator-demo, consumer / consumer-demo, admin / admin-demo"
	$(BIN)/balans run

test: os-packages setup ## Run the test suite against embedded PostgreSQL and NATS
	$(BIN)/pytest --numprocesses $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: setup ## ruff check, ruff format --check, mypy, table ownership, import contracts, declared dependencies, complete translations
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy libs/*/src services/*/src
	$(BIN)/python -m balans_db.ownership
	$(BIN)/python -m balans_i18n.check
	$(BIN)/lint-imports
	@for p in libs/* services/*; do echo "deptry $$p"; (cd $$p && ../../$(BIN)/deptry src) || exit 1; done

format: setup ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup ## Run every benchmark
	@for t in $$(grep -oE '^bench-[a-z-]+' $(MAKEFILE_LIST) | sort -u); do $(MAKE) --no-print-directory $$t || exit 1; done

clean: ## Remove the virtual env and the embedded servers' data
	rm -rf $(VENV) .tools .balans

bench-sim: setup ## dmesh-sim: a week of a 10 000-meter city generated and delivered into PostgreSQL (BENCH_SIM_METERS)
	$(BIN)/python services/dmesh-sim/bench/bench_sim.py

bench-api: setup ## api: open loop at 100/200/400 req/s + saturation, profiles + overviews vs /auth/me (BENCH_API_METERS, BENCH_API_DAYS, BENCH_API_RATES)
	$(BIN)/python services/api/bench/bench_api.py

bench-detection: setup ## balance: simulated city with faults, pipeline, detectors scored against ground truth (BENCH_BUILDINGS, BENCH_WEEKS)
	$(BIN)/python services/balance/bench/detection.py

bench-billing: setup ## billing: the reference building (100 accounts, a month of hourly data) invoiced, re-run, corrected
	$(BIN)/python services/billing/bench/bench_billing.py

bench-allocation: setup ## allocation: per-flat heat kernel, numba vs numpy, 2M flats x 24 h and 100k flats x a month, vs memory bandwidth
	$(BIN)/python services/allocation/bench/bench_allocation.py

bench-ingest: setup ## ingest: codec records/s, then 200 concentrators x 500 meters x 24 h through TCP -> ingest -> JetStream -> persister -> PostgreSQL vs raw COPY
	$(BIN)/python services/ingest/bench/bench_ingest.py

fuzz-protocol: setup ## protocol: 1 000 000 random and mutated frames through the decoder (atheris; FUZZ_RUNS, FUZZ_ENGINE=random for the quick one)
	$(BIN)/python libs/protocol/fuzz/fuzz_codec.py $${FUZZ_RUNS:-1000000} --engine $${FUZZ_ENGINE:-auto}

bench-scale: setup ## ops: one hour of a simulated city through ingest, persister, allocation, balance, stage by stage (BENCH_SCALE_BUILDINGS)
	$(BIN)/python deploy/bench/bench_scale.py

bench-scale-out: setup ## ops: 3-node NATS cluster, allocation and balance with 1 vs 2 processes, a NATS node killed during ingest (BENCH_SCALE_BUILDINGS)
	$(BIN)/python deploy/bench/bench_scale_out.py

chaos: setup ## reliability: a seeded run that SIGKILLs every process and server at random while the simulator uploads, then compares readings, heat, invoices and announcements with a run without kills (CHAOS_SEED, CHAOS_KILLS, CHAOS_BUILDINGS)
	$(BIN)/python deploy/chaos/chaos.py

bench-import: setup ## api: import a generated city of 1 000 buildings (~106 000 meters) from one world document, re-import it unchanged, vs raw COPY (BENCH_IMPORT_BUILDINGS)
	$(BIN)/python services/api/bench/bench_import.py

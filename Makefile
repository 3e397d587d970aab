# One task runner: the README, CI (.ci/run) and people all use these targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DA := $(VENV)/bin/da

.PHONY: help deps lint test unit integration e2e demo demo-stop bench chaos fuzz load-test clean

help:
	@echo "make demo   - local stack, topics, tables, GEP+demux+DEP processes, sample replay, live state"
	@echo "make test   - install what is needed, lint (ruff, mypy --strict) and run the whole suite"
	@echo "make bench  - throughput of each stage and of the pipeline, codec cost (docs/benchmarks.md)"
	@echo "make chaos  - ~100,000 events through kills, scaling, broker and database restarts"
	@echo "make fuzz   - nasty and random adversarial messages through every stage (FUZZ_MINUTES=20)"
	@echo "make load-test - a 100,000-event initial load beside live traffic (LOAD_EVENTS=N)"
	@echo "make lint | unit | integration | e2e | clean"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# Python packages, then PostgreSQL / Java / Maven (apt, only when missing) and the Kafka jars.
deps: $(VENV)/.installed
	PYTHON=$(PY) sh deploy/install-deps.sh

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

integration: deps
	$(PY) -m pytest tests/integration

e2e: deps
	$(PY) -m pytest tests/e2e

test: deps lint
	$(PY) -m pytest

demo: deps
	bash deploy/demo.sh

demo-stop:
	bash deploy/demo.sh stop

# Fault injection at scale (~100,000 events); its figures go to docs/reliability.md.
# Under deliberate load and another seed: make chaos CHAOS_LOAD=2 CHAOS_SEED=3
CHAOS_LOAD ?= 0
CHAOS_SEED ?= 1
CHAOS_MIN_FAULTS ?= 0
chaos: deps
	$(PY) -m tests.chaos.driver --fulfillments 9000 --students 400 --units 4 --lessons 4 --rate 2000 --fault-every 5 --seed $(CHAOS_SEED) --load $(CHAOS_LOAD) --min-faults $(CHAOS_MIN_FAULTS) --record docs/reliability.md

# Poison messages of every class and random adversarial ones through the real processes, for
# FUZZ_MINUTES; its figures go to docs/reliability.md.
FUZZ_MINUTES ?= 20
fuzz: deps
	$(PY) -m tests.e2e.fuzz --minutes $(FUZZ_MINUTES) --record docs/reliability.md

# The initial-load test at full size (the default suite loads 20,000 events); its figures go
# into docs/reliability.md by hand.
LOAD_EVENTS ?= 100000
load-test: deps
	DA_TEST_LOAD_EVENTS=$(LOAD_EVENTS) $(PY) -m pytest tests/e2e/test_initial_load.py -s -q

bench: $(VENV)/.installed
	PYTHON=$(PY) sh deploy/install-deps.sh wrk
	$(PY) -m bench.pipeline --record docs/benchmarks.md
	$(PY) -m bench.collector --connections 4 --batch 1 10 25 50 --record docs/benchmarks.md
	$(PY) -m bench.workflow --record docs/benchmarks.md
	$(PY) -m bench.codec --record docs/benchmarks.md

clean:
	-$(DA) stack down --force
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

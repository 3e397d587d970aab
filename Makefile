# One task runner: the README, CI (.ci/run) and people all use these targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DA := $(VENV)/bin/da

.PHONY: help deps lint test unit integration e2e cluster demo demo-stop bench chaos fuzz load-test clean

help:
	@echo "make demo   - local stack, topics, tables, GEP+demux+DEP processes, sample replay, live state"
	@echo "make test   - install what is needed, lint (ruff, mypy --strict) and run the whole suite"
	@echo "make bench  - each stage against its bare-client ceiling, the pipeline, latency, codec"
	@echo "              (docs/benchmarks.md; quick: make bench BENCH_EVENTS=20000 BENCH_REPS=1)"
	@echo "make chaos  - CHAOS_EVENTS (100,000) through kills, scaling, broker and database restarts, poison; CHAOS_BROKERS=3: a 3-broker cluster and its broker faults"
	@echo "make fuzz   - nasty and random adversarial messages through every stage (FUZZ_MINUTES=20)"
	@echo "make cluster - the pipeline on a 3-broker cluster through each broker fault (docs/reliability.md)"
	@echo "make load-test - a 100,000-event initial load beside live traffic (LOAD_EVENTS=N)"
	@echo "make lint | unit | integration | e2e | clean"

# -W: setuptools' notice about editable installs ("Please be careful with folders ...") is
# not for the people installing; errors still show.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -W 'ignore:Editable installation:UserWarning' -m pip install -q -e '.[dev]'
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

# The suite runs the broker faults on a 3-broker cluster at a small size: the four in turn in
# one run of the pipeline. make cluster adds one run per fault (marked cluster_full), for the
# recovery figures of each in docs/reliability.md.
test: deps lint
	$(PY) -m pytest -m "not cluster_full"

cluster: deps
	$(PY) -m pytest tests/cluster -rA --durations=0

demo: deps
	bash deploy/demo.sh

demo-stop:
	bash deploy/demo.sh stop

# Fault injection at scale (CHAOS_EVENTS raw events: 65 % proctoring, 30 % learning, 5 % OUS
# workflow commands); its figures go to docs/reliability.md. Under deliberate load and another seed:
# make chaos CHAOS_LOAD=2 CHAOS_SEED=3; a million events through 100 faults at least:
# make chaos CHAOS_EVENTS=1000000 CHAOS_MIN_FAULTS=100 CHAOS_BROKERS=3 (a 3-broker cluster and
# its broker faults; CHAOS_BROKERS=1, the default, restarts the one broker). After the stream
# the run waits for the tables while the pipeline moves, and fails once nothing moved for
# CHAOS_STILL seconds.
CHAOS_EVENTS ?= 100000
CHAOS_LOAD ?= 0
CHAOS_SEED ?= 1
CHAOS_MIN_FAULTS ?= 0
CHAOS_STILL ?= 300
CHAOS_BROKERS ?= 1
chaos: deps
	$(PY) -m tests.chaos.driver --events $(CHAOS_EVENTS) --rate 2000 --fault-every 5 --seed $(CHAOS_SEED) --brokers $(CHAOS_BROKERS) --load $(CHAOS_LOAD) --min-faults $(CHAOS_MIN_FAULTS) --still $(CHAOS_STILL) --record docs/reliability.md

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

# A quick look: make bench BENCH_EVENTS=20000 BENCH_REPS=1 (recorded too; a short run weighs
# start-up more, so compare its ratios, not its rates, with a full run's).
BENCH_EVENTS ?= 100000
BENCH_REPS ?= 3
BENCH_RATE ?= 5000
bench: $(VENV)/.installed
	PYTHON=$(PY) sh deploy/install-deps.sh wrk
	$(PY) -m bench.pipeline --events $(BENCH_EVENTS) --reps $(BENCH_REPS) --rate $(BENCH_RATE) \
		--record docs/benchmarks.md
	$(PY) -m bench.collector --connections 4 --batch 1 10 25 50 --record docs/benchmarks.md
	$(PY) -m bench.workflow --record docs/benchmarks.md
	$(PY) -m bench.codec --record docs/benchmarks.md

clean:
	-$(DA) stack down --force
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

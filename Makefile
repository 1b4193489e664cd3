# kubenorn: `make lab` brings up the lab and runs the main job; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST := $(PY) -m pytest -p no:cacheprovider

.PHONY: lab test unit lint format deps go venv lab-build lab-up lab-down lab-status bench clean

# The main job: the lab up (Kubernetes built from its Go module on first use), the cluster
# deployed onto it, verified, and the report printed.
lab: deps go venv lab-up
	$(PY) -m runbooks.deploy -i lab/inventory
	$(PY) -m runbooks.verify -i lab/inventory --verbose

# The whole suite: unit tests and lab end-to-end tests (one lab per session, shared).
test: deps go venv
	@$(PYTEST) --durations=15 tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; rc=0; fi; exit $$rc

# Everything that needs no lab.
unit: venv
	$(PYTEST) tests -m "not lab"

# Each test tree and bench/ is type-checked on its own: each has its own conftest.py (or none)
# and imports its sibling modules (fakes, simkit, timing) by their bare names.
TYPED_TREES := bench tests/unit tests/lab tests/sim

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --ignore-missing-imports tasks runbooks kubenorn lab
	@rc=0; for d in $(TYPED_TREES); do \
	  echo "mypy $$d"; MYPYPATH=$$d $(VENV)/bin/mypy --ignore-missing-imports $$d || rc=1; \
	done; exit $$rc

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Debian packages from apt-packages.txt, installed only when one is missing.
deps:
	@missing=$$(grep -v '^\s*#' apt-packages.txt | xargs -r -n1 sh -c \
	  'dpkg-query -W -f="\$${Status}" "$$0" 2>/dev/null | grep -q "ok installed" || echo "$$0"'); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

# The lab builds Kubernetes with the machine's Go (1.26 or newer; the release's go.mod says so).
go:
	@command -v go >/dev/null || { echo "go not found: the lab builds Kubernetes with Go >= 1.26" >&2; exit 1; }
	@go version | awk '{ split(substr($$3, 3), v, "."); if (v[1] < 1 || (v[1] == 1 && v[2] < 26)) { print "need Go >= 1.26, have " $$3 > "/dev/stderr"; exit 1 } }'

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

lab-build: venv
	$(PY) -m runbooks.lab build

lab-up: venv
	$(PY) -m runbooks.lab up

lab-down: venv
	$(PY) -m runbooks.lab down

lab-status: venv
	$(PY) -m runbooks.lab status

bench: venv lab-up
	$(PY) bench/lab_build.py
	$(PY) bench/primitives.py
	$(PY) bench/pki.py
	$(PY) bench/deploy.py

clean:
	rm -rf $(VENV) *.egg-info .ruff_cache

# TinyIM. `make run` and `make test` work on a fresh machine: they create .venv, install the package with
# its dev tools, and generate the protobuf code first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PB     := src/tinyim/pb/.generated

.PHONY: setup run cluster cluster-down test test-big lint bench clean fuzz soak
.PHONY: compose-e2e lock unit contract e2e check hooks

# Web client (web/): npm ci when the lock file changes, a Vite build when its sources or the protos change.
# Without npm the server still runs (/ then says how to build the app); under CI=true a missing npm fails.
.PHONY: web web-test
WEB_DEPS  := web/node_modules/.installed
WEB_BUILT := web/dist/.built
WEB_SRC   := $(shell find web/src web/examples web/index.html web/vite.config.ts web/tsconfig.json web/buf.gen.yaml -type f -not -path 'web/src/gen/*' 2>/dev/null)
HAVE_NPM  := $(shell command -v npm 2>/dev/null)

# PUPPETEER_SKIP_DOWNLOAD: the Firefox test drives Debian's firefox-esr; no browser is ever downloaded
# (puppeteer-core has no install step that would; this says so to any package that asks).
$(WEB_DEPS): web/package.json web/package-lock.json
	cd web && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund
	touch $@

$(WEB_BUILT): $(WEB_DEPS) $(WEB_SRC) $(wildcard protos/*.proto)
	cd web && npm run build
	touch $@

ifeq ($(HAVE_NPM),)
web:
	@if [ "$$CI" = true ]; then echo "npm is missing: the Web client cannot be built"; exit 1; fi
	@echo "warning: npm not found; the Web client is not built (install Node.js 20+ and npm)"
web-test: web
else
web: $(WEB_BUILT)
web-test: $(WEB_BUILT)
	cd web && npm test
endif

setup: $(PB)

# The dev tools and every driver at the versions of requirements-dev.lock (hash-checked), then this package
# without resolving anything more. LOCKED=0 installs the newest releases pyproject.toml allows instead.
LOCKED ?= 1
$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "TinyIM needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
ifeq ($(LOCKED),1)
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
else
	$(PY) -m pip install --quiet -e '.[dev]'
endif
	touch $@

# requirements.lock (the image), requirements-build.lock (the image's build stage), requirements-dev.lock
# (make setup) from pyproject.toml, with hashes; UPGRADE=1 moves every pin to the newest release.
lock: $(STAMP)
	tools/lock.sh

$(PB): $(STAMP) $(wildcard protos/*.proto) tools/genproto.py
	$(PY) tools/genproto.py
	touch $@

# One process, every role, embedded defaults (SQLite under ./var, in-memory presence): no servers needed.
run: setup web
	$(VENV)/bin/tinyim migrate
	$(VENV)/bin/tinyim run

# The multi-process topology (dispatch, 2 gateways, auth, user, 2 msg) as local processes on loopback;
# needs MariaDB and Redis (IM_DATABASE_URL / IM_REDIS_URL, default: local ones). Returns once all answer.
cluster: setup
	$(VENV)/bin/tinyim cluster up

cluster-down: setup
	$(VENV)/bin/tinyim cluster down

test: setup web-test
	$(PY) -m pytest -q -m "unit or contract or integration" -n 4
	$(PY) -m pytest -q -m "not (unit or contract or integration or big)" -n 2 --dist loadfile --no-loadscope-reorder --durations=25

# One tier at a time (each test is marked with its tier: tests/conftest.py); `make check`: lint, types,
# import rules. `make unit` needs nothing running; contract and e2e use MariaDB/Redis/etcd when present.
unit: setup
	$(PY) -m pytest -q -m unit -n 4

contract: setup
	$(PY) -m pytest -q -m "contract or integration" -n 4

e2e: setup web
	$(PY) -m pytest -q -m "(e2e or chaos or soak or fuzz) and not big" -n 2 --dist loadfile --no-loadscope-reorder

check: lint

# git hooks: ruff, formatting, mypy and import rules before each commit (.pre-commit-config.yaml)
hooks: setup
	$(VENV)/bin/pre-commit install

# Tests that move gigabytes (a >4 GiB upload through the file gateway): minutes, so not in `make test`.
test-big: setup
	$(PY) -m pytest -q -m big

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# compose-e2e: the multi-role topology in real containers (docker/compose.yaml + compose.local.yaml, images
# built from Debian's packages), the e2e scenarios against it from the host, then everything torn down.
compose-e2e: setup
	tools/compose_e2e.sh

bench: setup
	$(PY) -m bench

# bench-profile: py-spy of the server under G1 load; bench-sql: statement log + SQLAlchemy/asyncmy costs;
# bench-baseline: the #12 reference figures, kept in git as bench/results/*-baseline.json.
.PHONY: bench-profile bench-sql bench-baseline
bench-profile: setup
	$(PY) -m bench --only profile

bench-sql: setup
	$(PY) -m bench --only sql

bench-baseline: setup
	$(PY) -m bench --only g1,cluster,g2,profile,sql --conversation-list on --suffix baseline

clean:
	rm -rf $(VENV) src/tinyim/pb .pytest_cache .mypy_cache .ruff_cache .hypothesis
	rm -rf web/node_modules web/dist web/src/gen

# Reliability: the long fuzz run (FUZZ_SECONDS per target; `make test` runs 8 s each) and the soak
# (SOAK_MINUTES of traffic under injected faults; `make test` runs 2 minutes).
FUZZ_SECONDS ?= 600
fuzz: setup
	$(PY) -m fuzz.run --seconds $(FUZZ_SECONDS)

SOAK_MINUTES ?= 30
soak: setup
	$(PY) -m soak --minutes $(SOAK_MINUTES)

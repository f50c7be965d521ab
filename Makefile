# Billing Dialer — the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
CLIENTS ?= 2000

.PHONY: run test setup build production-check migrate bench chaos fuzz check lint clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# Chart.js for the dashboard charts, fetched from the npm registry into static/vendor/ (not
# committed). Without npm the pages still work: every chart has its data table. The source map
# comes along: the script names it (sourceMappingURL), and collectstatic's hashed storage refuses
# to build when a file it names is missing.
CHARTJS_VERSION := 4.6.1
CHARTJS := static/vendor/chart.js/chart.umd.min.js
CHARTJS_MAP := $(CHARTJS).map
CHARTJS_TGZ := var/npm/chart.js-$(CHARTJS_VERSION).tgz
$(CHARTJS) $(CHARTJS_MAP) &:
	@mkdir -p $(dir $(CHARTJS)) var/npm
	@if test -s $(CHARTJS_TGZ) || (command -v npm >/dev/null 2>&1 && cd var/npm && npm pack --silent chart.js@$(CHARTJS_VERSION) >/dev/null); then \
	  tar -xzf $(CHARTJS_TGZ) -C var/npm package/dist/chart.umd.min.js package/dist/chart.umd.min.js.map package/LICENSE.md && \
	  cp var/npm/package/LICENSE.md $(dir $(CHARTJS))LICENSE.md && \
	  cp var/npm/package/dist/chart.umd.min.js.map $(CHARTJS_MAP) && cp var/npm/package/dist/chart.umd.min.js $(CHARTJS); \
	else rm -f $(CHARTJS) $(CHARTJS_MAP); echo "chart.js $(CHARTJS_VERSION) could not be fetched; dashboard charts fall back to their tables"; fi

# axe-core for the browser tests' accessibility scan, fetched from the npm registry the same way
# into var/ (a test tool: never served). Without it the scan is skipped and says why.
AXE_VERSION := 4.14.1
AXE := var/npm/axe-core-$(AXE_VERSION)/axe.min.js
AXE_TGZ := var/npm/axe-core-$(AXE_VERSION).tgz
$(AXE):
	@mkdir -p var/npm
	@if test -s $(AXE_TGZ) || (command -v npm >/dev/null 2>&1 && cd var/npm && npm pack --silent axe-core@$(AXE_VERSION) >/dev/null); then \
	  mkdir -p $(dir $(AXE)) && tar -xzf $(AXE_TGZ) -C $(dir $(AXE)) --strip-components=1 package/axe.min.js package/LICENSE; \
	else echo "axe-core $(AXE_VERSION) could not be fetched; the accessibility scan is skipped"; fi

setup: $(STAMP) $(CHARTJS) $(CHARTJS_MAP) $(AXE)

# The production build of the static files: collectstatic with the storage DEBUG=False selects
# (hashed names, compressed copies, a manifest — without which every page answers 500). Run it
# where the image or slug is built; STATIC_ROOT says where the files go. collectstatic reads no
# secret, so a build without SECRET_KEY gets a stand-in for this command alone.
build: setup
	DEBUG=False SECRET_KEY="$${SECRET_KEY:-collectstatic-reads-no-secret}" $(PY) manage.py collectstatic --noinput

# The production path end to end, as README's "Going live" describes it and CI runs it: the build
# with DEBUG=False, the Procfile's release and web commands (gunicorn), then requests through
# it. Fails on a login page that is not 200, a hashed static file without far-future caching, any
# `check --deploy` issue, or any answer 5xx. PostgreSQL at 127.0.0.1:5432 when it answers.
production-check: setup
	$(PY) .ci/production_check.py

migrate: setup
	$(PY) manage.py migrate --noinput

# Sets everything up on the embedded default (SQLite, sandbox vendors, sample warehouse), prints
# a demo login, starts today's sandbox campaign on an accelerated clock, and runs the portal with
# its worker. Ctrl-C stops every process started here.
run: migrate
	$(PY) manage.py run_demo --clients $(CLIENTS) --host $(HOST) --port $(PORT)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# System checks, migrations in step with the models, pyflakes, the import contracts
# (.importlinter: the floors and the day's one-way flow), mypy over the whole product, and a
# bounded schemathesis run of the API against its own OpenAPI schema (in-process, a few hundred
# requests: no 5xx, and no status, header or body the schema does not list).
check: setup
	$(PY) manage.py check --fail-level WARNING
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/ruff check --no-cache .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m mypy access billing_dialer cadences campaigns integrations
	$(PY) -m pytest tests/security/test_api_conformance.py -p no:cacheprovider -q

bench: migrate
	$(PY) -m benchmarks $(BENCH_ARGS)

# The fault-injection suite, on PostgreSQL (trust auth, user postgres) unless DATABASE_URL says otherwise.
CHAOS_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/billing_dialer_chaos
chaos: setup
	CHAOS=1 DATABASE_URL="$${DATABASE_URL:-$(CHAOS_DATABASE_URL)}" $(PY) -m pytest tests/chaos -p no:cacheprovider $(PYTEST_ARGS)

# Coverage-guided fuzzing (atheris): each target for FUZZ_SECONDS, its corpus kept in var/fuzz/ so
# the next run starts where this one stopped; a crash is written there with the input that made it.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := csv_file queue_values retell_signature retell_event call_analysis sms_template log_mask
fuzz: setup
	@set -e; for target in $(FUZZ_TARGETS); do \
	  mkdir -p var/fuzz/$$target; echo "== $$target ($(FUZZ_SECONDS) s)"; \
	  $(PY) -m tests.fuzz.guided $$target var/fuzz/$$target -max_total_time=$(FUZZ_SECONDS) \
	    -artifact_prefix=var/fuzz/$$target- -print_final_stats=1 2>&1 | grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added| ===|Traceback|  File|[A-Za-z]+Error|==[0-9]+== ERROR|artifact_prefix)' ; \
	  test $${PIPESTATUS[0]} -eq 0; \
	done

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .hypothesis

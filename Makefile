# The README's commands. Each sets up what it needs: the virtualenv, and PostgreSQL/Redis
# (embedded under .data/ unless DATABASE_URL / REDIS_URL are set).
PYTHON ?= python3
VENV := .venv
PY := $(CURDIR)/$(VENV)/bin/python
# Every command runs with the servers available (scrm/embedded.py).
WITH_SERVERS := $(PY) -m scrm.embedded --
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test install migrate shell lint bench-events bench-callbacks clean-data

demo: install
	$(WITH_SERVERS) $(PY) manage.py rundemo

test: install
	$(WITH_SERVERS) $(PY) -m pytest $(PYTEST_ARGS)

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

migrate: install
	$(WITH_SERVERS) $(PY) manage.py migrate

shell: install
	$(WITH_SERVERS) $(PY) manage.py shell

lint: install
	$(VENV)/bin/ruff check .

# Bulk load rate of the event log (COPY path), 1 million events by default.
bench-events: install
	$(WITH_SERVERS) $(PY) tests/bench/bench_event_load.py $(BENCH_ARGS)

clean-data:
	rm -rf .data

# WeCom webhook throughput on loopback (callbacks/s accepted, latency percentiles).
bench-callbacks: install
	$(WITH_SERVERS) $(PY) tests/bench/bench_callbacks.py $(BENCH_ARGS)

# Contact list query time: 100,000 contacts × 20 tags, a three-tag filter plus tier and stage.
.PHONY: bench-contacts
bench-contacts: install
	$(WITH_SERVERS) $(PY) tests/bench/bench_contact_list.py $(BENCH_ARGS)

# SOP engine: plan one daily slot for 50,000 groups + 200,000 journey targets (target < 10 s),
# then dispatch and send it all through the fake WeCom with real Celery workers.
.PHONY: bench-sop
bench-sop: install
	$(WITH_SERVERS) $(PY) tests/bench/bench_sop.py $(BENCH_ARGS)

# Lifecycle analytics on the --scale demo data (load it first: `manage.py demo_data --scale`):
# overview, group page, cohort triangle, type split, beside DuckDB computing the same overview.
.PHONY: bench-analytics
bench-analytics: install
	$(WITH_SERVERS) $(PY) tests/bench/bench_analytics.py $(BENCH_ARGS)

# Flash sale (秒杀) over HTTP: 50 clients claiming 1,000 units among 5,000 customers under
# gunicorn; claims/s, requests/s, latency, and the oversold count (must be 0).
.PHONY: bench-flash-sale
bench-flash-sale: install
	$(WITH_SERVERS) $(PY) tests/bench/bench_flash_sale.py $(BENCH_ARGS)

# Server time of every main dashboard page on the --scale demo data (target < 300 ms each):
# median and p95 of 5 warm requests through Django's test client, and the queries of each.
.PHONY: bench-pages
bench-pages: install
	$(WITH_SERVERS) $(PY) tests/bench/bench_pages.py $(BENCH_ARGS)

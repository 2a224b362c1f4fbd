# GenoFlow: `make demo` runs the whole pipeline on the embedded default; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export GENOFLOW_DATA_DIR ?= $(CURDIR)/data

.PHONY: install demo test dev portal dev-postgres bench bench-accuracy bench-pipeline bench-alignment bench-portal lint conformance clean home

$(VENV)/.installed: pyproject.toml setup.py genoflow_dagster/_fastq.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

home:
	@mkdir -p "$(DAGSTER_HOME)" "$(GENOFLOW_DATA_DIR)"
	@test -f "$(DAGSTER_HOME)/dagster.yaml" || cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"

demo: install home
	$(VENV)/bin/genoflow demo

test: install
	$(VENV)/bin/pytest -q

dev: install home
	$(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000

# The upload portal's API on http://127.0.0.1:8000 (docs at /docs); make a token first: genoflow token add NAME --role admin
portal: install home
	$(VENV)/bin/genoflow portal --host 127.0.0.1 --port 8000

# The production instance (README, "Production instance (PostgreSQL)"): deploy/postgres/dagster.yaml in
# $(DAGSTER_HOME), never over another instance's dagster.yaml, then the UI and the daemon on it.
dev-postgres: install
	@for v in DAGSTER_PG_HOST DAGSTER_PG_PORT DAGSTER_PG_USER DAGSTER_PG_PASSWORD DAGSTER_PG_DB; do \
	  printenv $$v >/dev/null || { echo "$$v is not set (README: Production instance (PostgreSQL))"; exit 2; }; done
	@mkdir -p "$(DAGSTER_HOME)" "$(GENOFLOW_DATA_DIR)"
	@if [ -f "$(DAGSTER_HOME)/dagster.yaml" ] && ! cmp -s deploy/postgres/dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"; then \
	  echo "$(DAGSTER_HOME)/dagster.yaml is another instance's configuration: not replaced."; \
	  echo "Set DAGSTER_HOME to a directory of its own (e.g. $(CURDIR)/.dagster_home_pg) or remove that file."; \
	  exit 2; fi
	cp deploy/postgres/dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"
	$(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000

bench: install
	$(PY) benchmarks/run.py

bench-accuracy: install
	$(PY) benchmarks/accuracy.py

bench-pipeline: install
	$(PY) benchmarks/pipeline_speed.py

bench-alignment: install
	$(PY) benchmarks/alignment_identity.py --same-version

# The upload portal under load (issue 15): 20 concurrent 100 MB uploads against s3transfer, both to moto on
# loopback; writes RESULTS.md. ARGS=--small for a quick smoke that only prints.
bench-portal: install
	$(PY) benchmarks/portal_load.py $(ARGS)

conformance: install
	$(PY) benchmarks/conformance.py

lint: install
	$(VENV)/bin/ruff check genoflow_dagster tests benchmarks
	$(VENV)/bin/mypy genoflow_dagster

clean:
	rm -rf "$(GENOFLOW_DATA_DIR)" "$(DAGSTER_HOME)"

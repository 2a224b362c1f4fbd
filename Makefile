# GenoFlow: `make demo` runs the whole pipeline on the embedded default; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export GENOFLOW_DATA_DIR ?= $(CURDIR)/data

.PHONY: install demo test dev bench bench-accuracy bench-pipeline bench-alignment lint conformance clean home

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

bench: install
	$(PY) benchmarks/run.py

bench-accuracy: install
	$(PY) benchmarks/accuracy.py

bench-pipeline: install
	$(PY) benchmarks/pipeline_speed.py

bench-alignment: install
	$(PY) benchmarks/alignment_identity.py --same-version

conformance: install
	$(PY) benchmarks/conformance.py

lint: install
	$(VENV)/bin/ruff check genoflow_dagster tests benchmarks

clean:
	rm -rf "$(GENOFLOW_DATA_DIR)" "$(DAGSTER_HOME)"

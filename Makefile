# The two commands: `make run` (set up, make a demo study, start the dashboard) and
# `make test` (set up, run every test). Everything else here serves those two.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATA_DIR ?= data
DEMO := $(DATA_DIR)/demo
PORT ?= 8501
PYTEST_WORKERS ?= 2

.PHONY: run test test-fast bench venv demo docs clean

run: $(STAMP) $(DEMO)/dm.parquet
	@echo "Starting the dashboard on http://localhost:$(PORT) (study: $(DEMO)). Stop with Ctrl-C."
	RBQM_DATA_DIR=$(DATA_DIR) $(BIN)/streamlit run dashboard/app.py \
		--server.address localhost --server.port $(PORT) --server.headless true \
		--browser.gatherUsageStats false

test: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --durations=10

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "not slow and not browser"

bench: $(STAMP)
	$(BIN)/python -m bench.synth
	$(BIN)/python -m bench.kri
	$(BIN)/python -m bench.ingest

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(DEMO)/dm.parquet

$(DEMO)/dm.parquet: | $(STAMP)
	@echo "No demo study in $(DEMO): generating one (about a minute)."
	$(BIN)/rbqm synth $(DEMO) --sites 60 --subjects 1500 --countries 8 --months 24 --cuts 6 --seed 2026

docs: $(STAMP)
	$(BIN)/python -m rbqm.schema > docs/data-format.md
	$(BIN)/python -m rbqm.kri.docs > docs/kri-library.md

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

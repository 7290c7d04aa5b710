# The two commands: `make run` (set up, make a demo study, start the dashboard) and
# `make test` (set up, run every test). Everything else here serves those two.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATA_DIR ?= data
DEMO := $(DATA_DIR)/demo
DEMO_LOGIN := $(DATA_DIR)/demo-login.txt
PORT ?= 8501
PYTEST_WORKERS ?= 2

.PHONY: run test test-fast bench bench-detect venv demo demo-login demo-analysis docs clean

run: $(STAMP) $(DEMO)/dm.parquet demo-login demo-analysis
	@echo "Starting the dashboard on http://localhost:$(PORT) (study: $(DEMO)). Stop with Ctrl-C."
	@if test -s $(DEMO_LOGIN); then echo "Sign in as demo / $$(cat $(DEMO_LOGIN))"; \
	else echo "Sign in with your rbqm account (the store has accounts but no demo login)."; fi
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
	$(BIN)/python -m bench.csm
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.dashboard

# Detection benchmark: every anomaly type at 3 magnitudes, 50 replicate studies each, on 2 workers;
# writes docs/detection.md and bench/results/detect*. DETECT_ARGS="--replicates 10" for a quick run.
bench-detect: $(STAMP)
	$(BIN)/python -m bench.detect $(DETECT_ARGS)

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(DEMO)/dm.parquet demo-login

# The demo admin account, for a store without accounts: `rbqm user add` makes it the first admin
# with a random password kept in $(DEMO_LOGIN) (git-ignored with data/). A store that already has
# accounts refuses it (only an admin may add accounts there), so it never gets a demo login.
demo-login: | $(STAMP)
	@export RBQM_DATA_DIR=$(DATA_DIR); \
	if ! $(BIN)/rbqm user list --actor demo >/dev/null 2>&1; then \
		password=$$($(BIN)/python -c "import secrets; print(secrets.token_urlsafe(15))"); \
		if RBQM_PASSWORD="$$password" $(BIN)/rbqm user add demo --role admin --actor demo \
			--reason "demo account for make run" >/dev/null 2>&1; then \
			(umask 077; printf '%s\n' "$$password" > $(DEMO_LOGIN)); echo "Added the demo admin account."; \
		else rm -f $(DEMO_LOGIN); fi; \
	fi

# The demo's analysis, saved under $(DATA_DIR)/.analysis (rbqm.saved_analysis) so the dashboard
# opens at once with the data inconsistency score; read back in a second once saved.
demo-analysis: $(DEMO)/dm.parquet
	@echo "Analysing the demo study (saved; the first time takes a few minutes)."
	@$(BIN)/python -c "from rbqm.saved_analysis import saved_analysis; saved_analysis('$(DEMO)', '$(DATA_DIR)/.analysis')"

$(DEMO)/dm.parquet: | $(STAMP)
	@echo "No demo study in $(DEMO): generating one (about a minute)."
	$(BIN)/rbqm synth $(DEMO) --sites 60 --subjects 1500 --countries 8 --months 24 --cuts 6 --seed 2026

docs: $(STAMP)
	$(BIN)/python -m rbqm.schema > docs/data-format.md
	$(BIN)/python -m rbqm.kri.docs > docs/kri-library.md

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# Every target installs what it needs: uv from PyPI when it is missing, then the locked environment.
SHELL := /bin/bash
export PROMO_HOME ?= $(CURDIR)/data
# The one variable that names the warehouse for Dagster and dbt alike.
export PROMO_WAREHOUSE ?= $(PROMO_HOME)/warehouse/build.duckdb
export DAGSTER_HOME ?= $(PROMO_HOME)/dagster
# Telemetry off everywhere.
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := False
# uv is run as a module of the system Python, so it is found wherever pip put it.
UV := python3 -m uv
RUN := $(UV) run --frozen --no-sync

.PHONY: env demo demo-core pipeline dagster console screenshot serve test lint format bench-api bench-core bench-distribution bench-sim bench-import bench-pipeline bench-ml bench-fraud-reviews bench-console

# Quiet unless something fails: a newcomer's first screen shows the demo, not installer chatter.
env:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore uv
	@$(UV) sync --frozen --quiet --compile-bytecode

# Simulate a business into PROMO_HOME, run the whole pipeline, print a summary. Always on the
# SQLite ledger under PROMO_HOME, whatever PROMO_LEDGER_URL says.
demo: env
	PROMO_LEDGER_URL= $(RUN) python -m pipelines.demo

# The redemption core and distribution walkthrough, on its own.
demo-core: env
	$(RUN) python -m redemption_core.demo

# Materialize every asset once (the nightly job), recorded in the Dagster instance.
pipeline: env
	$(RUN) python -m pipelines.run

# Dagster webserver and daemon (schedule, sensor) on http://127.0.0.1:3000
dagster: env
	$(RUN) python -m pipelines.run --setup-only
	$(RUN) dagster dev -m pipelines.definitions -h 127.0.0.1 -p 3000

# The analysts' console over the published warehouse, on http://127.0.0.1:8501
console: env
	$(RUN) streamlit run app_streamlit/streamlit_app.py --server.address 127.0.0.1 --server.headless true --browser.gatherUsageStats false

# The README's picture of the console, from the warehouse under PROMO_HOME (after `make demo`).
screenshot: env
	$(RUN) python -m app_streamlit.screenshots

# The HTTP API on http://127.0.0.1:8000/v1 (two workers over the ledger in PROMO_HOME).
serve: env
	$(RUN) promo serve

test: env
	$(RUN) pytest

lint: env
	$(RUN) ruff check .
	$(RUN) ruff format --check .

format: env
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

bench-core: env
	$(RUN) python bench/core.py

bench-api: env
	$(RUN) python bench/api.py

bench-distribution: env
	$(RUN) python bench/distribution.py

bench-sim: env
	$(RUN) python bench/sim.py

bench-import: env
	$(RUN) python bench/import.py

bench-pipeline: env
	$(RUN) python bench/pipeline.py

bench-console: env
	$(RUN) python bench/console.py

bench-ml: env
	$(RUN) python bench/ml.py

bench-fraud-reviews: env
	$(RUN) python bench/fraud_reviews.py

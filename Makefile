# Every target installs what it needs: uv from PyPI when it is missing, then the locked environment.
SHELL := /bin/bash
export PROMO_HOME ?= $(CURDIR)/data
# uv is run as a module of the system Python, so it is found wherever pip put it.
UV := python3 -m uv
RUN := $(UV) run --frozen --no-sync

.PHONY: env demo test lint format bench-core bench-distribution bench-sim

env:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet

demo: env
	$(RUN) python -m redemption_core.demo

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

bench-distribution: env
	$(RUN) python bench/distribution.py

bench-sim: env
	$(RUN) python bench/sim.py

# Leerbot: the same targets locally and in CI.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
POSTGRES_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: run test lint fmt bench install system-deps nlu-model clean audit

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP) ## the app virtualenv with dev tools

system-deps: ## Debian packages: chromium for browser tests, fonts for the loopbaankaart
	@bash scripts/system-deps.sh

nlu-model: install ## the Rasa virtualenv and model, cached outside the clone by content hash
	$(BIN)/leerbot nlu train

run: install nlu-model ## local demo on SQLite: sandbox + bot + dashboard + NLU
	$(BIN)/leerbot up

test: install system-deps nlu-model ## the whole suite, on SQLite and PostgreSQL
	@bash scripts/ensure-postgres.sh
	$(BIN)/pytest -p no:cacheprovider --durations=20 --postgres $(POSTGRES_URL) $(PYTEST_ARGS)

lint: install ## format check, ruff, mypy, import boundaries
	$(BIN)/ruff format --check --diff .
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

audit: install ## security: ruff S rules, no secrets in the tree, pip-audit (skips, saying why, offline)
	$(BIN)/pytest -p no:cacheprovider -rs tests/deploy/test_security.py

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install nlu-model ## benchmarks → bench/results/*.json (see README)
	@bash scripts/ensure-postgres.sh
	$(BIN)/python -m bench --postgres $(POSTGRES_URL)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache leerbot.db*

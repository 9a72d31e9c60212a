# Hookline: `make local` starts the local stack, `make test` runs every check. Both set up from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# sam build needs the Lambda runtime's Python (3.12) on PATH; pyenv exposes it through PYENV_VERSION.
export PYENV_VERSION ?= 3.11.7:3.12.1:3.13.0
export AWS_ACCOUNT_ID_ENDPOINT_MODE := disabled
export SAM_CLI_TELEMETRY := 0

.PHONY: install local test lint typecheck unit template test-slow bench soak openapi clean browser-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

local: $(STAMP)
	$(BIN)/hookline local --allow-private-targets $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check hookline functions tests bench
	$(BIN)/ruff format --check hookline functions tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -n 2 -m "not slow"

template: $(STAMP)
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint --template-file template.yaml
	$(BIN)/sam build --template-file template.yaml --build-dir .aws-sam/build

# Browser tests drive Debian's Chromium through Playwright (its own browser download cannot
# reach its host here); axe-core is for accessibility checks. Idempotent.
browser-deps: $(STAMP)
	command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }
	$(BIN)/python -c "import playwright" 2>/dev/null || $(BIN)/pip install --quiet playwright
	test -f node_modules/axe-core/axe.min.js || npm install --no-save --no-audit --no-fund --silent axe-core

test: browser-deps lint typecheck template unit

test-slow: $(STAMP)
	$(BIN)/pytest -m slow

bench: $(STAMP)
	$(BIN)/python -m bench.run

soak: $(STAMP)
	$(BIN)/python -m bench.soak

openapi: $(STAMP)
	$(BIN)/python -m hookline.api.openapi --write docs/openapi.json

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache

# Hookline: `make local` starts the local stack, `make test` runs every check. Both set up from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins its own boto3, botocore and packaging, which would fight moto's and sam's: it
# gets a virtualenv of its own.
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
# sam build needs the Lambda runtime's Python (3.12) on PATH; pyenv exposes it through PYENV_VERSION.
export PYENV_VERSION ?= 3.11.7:3.12.1:3.13.0
export AWS_ACCOUNT_ID_ENDPOINT_MODE := disabled
export SAM_CLI_TELEMETRY := 0

.PHONY: install local test lint typecheck unit template test-slow bench soak openapi env-json clean browser-deps screenshots

LOCAL_STAMP := $(VENV)/.installed-local
# pip shows what it collects and installs (progress), without its version nag.
PIP_INSTALL := $(BIN)/pip install --disable-pip-version-check --progress-bar on

$(BIN)/python:
	@echo "==> creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> upgrading pip"
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip

# The local stack alone: the runtime, moto and PyYAML (no SAM CLI, cfn-lint, mypy, schemathesis, matplotlib).
$(LOCAL_STAMP): pyproject.toml | $(BIN)/python
	@echo "==> installing the local stack: hookline[local]"
	$(PIP_INSTALL) -e '.[local]'
	touch $(LOCAL_STAMP)

# Everything `make test` and `make bench` use.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "==> installing the whole toolchain: hookline[dev,bench]"
	$(PIP_INSTALL) -e '.[dev,bench]'
	touch $(STAMP) $(LOCAL_STAMP)

install: $(STAMP)

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $(CHECKOV_STAMP)

# A full install (make install / make test) serves the local stack too.
local: $(if $(wildcard $(STAMP)),$(STAMP),$(LOCAL_STAMP))
	$(BIN)/hookline local --allow-private-targets $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check hookline hookline_dev functions tests bench
	$(BIN)/ruff format --check hookline hookline_dev functions tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -n 2 -m "not slow"

# checkov's suppressions are in template.yaml (Metadata.checkov.skip), each with its reason.
# --skip-download: checkov would otherwise fetch guideline links from its vendor's API.
template: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint --template-file template.yaml
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download
	$(BIN)/sam build --template-file template.yaml --build-dir .aws-sam/build

# Browser tests (tests/browser/): Debian's Chromium (Playwright's own download cannot work here),
# Playwright for Python in the venv, and axe-core from npm in a git-ignored node_modules/.
browser-deps: $(STAMP)
	command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }
	$(BIN)/python -c "import playwright" 2>/dev/null || $(BIN)/pip install --quiet playwright
	test -f node_modules/axe-core/axe.min.js || command -v npm >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq npm; }
	test -f node_modules/axe-core/axe.min.js || npm install --no-save --no-audit --no-fund --silent axe-core

test: browser-deps lint typecheck template unit

screenshots: browser-deps
	$(BIN)/python -m tests.browser.screenshots

test-slow: $(STAMP)
	$(BIN)/pytest -m slow

bench: $(STAMP)
	$(BIN)/python -m bench.run

soak: $(STAMP)
	$(BIN)/python -m bench.soak

openapi: $(STAMP)
	$(BIN)/python -m hookline_dev.openapi --write docs/openapi.json

# env.json for `sam local invoke --env-vars` (a test fails when it is stale).
env-json: $(LOCAL_STAMP)
	$(BIN)/python -m hookline_dev.local.sam_local env-json --write env.json

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache node_modules

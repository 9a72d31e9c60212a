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

.PHONY: install local test lint typecheck unit template test-slow bench soak openapi clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $(CHECKOV_STAMP)

local: $(STAMP)
	$(BIN)/hookline local --allow-private-targets $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check hookline functions tests bench
	$(BIN)/ruff format --check hookline functions tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -n 2 -m "not slow"

# checkov's suppressions are in template.yaml (Metadata.checkov.skip), each with its reason.
template: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint --template-file template.yaml
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --compact --quiet
	$(BIN)/sam build --template-file template.yaml --build-dir .aws-sam/build

test: lint typecheck template unit

test-slow: $(STAMP)
	$(BIN)/pytest -m slow

bench: $(STAMP)
	$(BIN)/python -m bench.run

soak: $(STAMP)
	$(BIN)/python -m bench.soak

openapi: $(STAMP)
	$(BIN)/python -m hookline.api.openapi --write docs/openapi.json

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache

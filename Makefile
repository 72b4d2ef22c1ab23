# The two commands README names: `make up` (fleet on the embedded emulator) and `make test` (the whole suite).
# `make up` / `make destroy` are the operator CLI (`lambda-sae`, lambda_provider/cli/) on the '$(STACK)' stack.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

STACK ?= dev
# The CLI sets the engine's environment itself (file backend in ./.pulumi-state, no update check, no plugin
# downloads, the dev passphrase for emulator stacks only: a real stack needs your PULUMI_CONFIG_PASSPHRASE).
export PULUMI_SKIP_UPDATE_CHECK := true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION := true

# Every recipe runs with the pinned toolchain and the project's venv first on PATH.
WITH_TOOLS = PATH="$$(cat .toolchain):$(CURDIR)/.venv/bin:$$PATH"
CLI = $(WITH_TOOLS) python -m lambda_provider.cli

.PHONY: help setup up destroy test test-fast lint
help:
	@echo "make up       set up, start the local Lambda emulator, lambda-sae up the '$(STACK)' stack (live view)"
	@echo "make test     set up and run the whole test suite"
	@echo "make destroy  lambda-sae destroy the '$(STACK)' stack and check that nothing is left billing"
	@echo "make test-fast  the unit tier (no emulator, no pulumi), under 30 s"
	@echo "make lint     ruff check and ruff format --check"
	@echo "more verbs:   .venv/bin/python -m lambda_provider.cli --help (the lambda-sae command of pip install -e .)"

# Instant once cached (~/.cache/lambda-sae); the first time about 7 minutes (Go build and pip side by side).
setup:
	@scripts/setup

up: setup
	@$(CLI) up --stack $(STACK)

destroy: setup
	@$(CLI) destroy --stack $(STACK)

test: setup
	$(WITH_TOOLS) LAMBDA_SAE_REQUIRE_PULUMI=1 python -m pytest -q tests

test-fast: setup
	$(WITH_TOOLS) python -m pytest -q -m unit tests

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

# The two commands README names: `make up` (fleet on the embedded emulator) and `make test` (the whole suite).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

STACK ?= dev
# The dev stack talks only to the local emulator, so its secrets passphrase is not a secret; real stacks must set
# their own PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE). See README "Secrets".
export PULUMI_CONFIG_PASSPHRASE ?= dev-stack-emulator-only
export PULUMI_BACKEND_URL ?= file://$(CURDIR)/.pulumi-state
export PULUMI_SKIP_UPDATE_CHECK := true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION := true

# Every recipe runs with the pinned toolchain and the project's venv first on PATH.
WITH_TOOLS = PATH="$$(cat .toolchain):$(CURDIR)/.venv/bin:$$PATH"

.PHONY: help setup up destroy test lint emulator emulator-stop
help:
	@echo "make up       set up, start the local Lambda emulator, pulumi up the '$(STACK)' stack, show the fleet"
	@echo "make test     set up and run the whole test suite"
	@echo "make destroy  pulumi destroy the '$(STACK)' stack and show that nothing is left running"
	@echo "make lint     ruff"

# Instant once cached (~/.cache/lambda-sae); the first time about 7 minutes (Go build and pip side by side).
setup:
	@scripts/setup

up: setup
	@$(WITH_TOOLS) scripts/fleet up $(STACK)

destroy: setup
	@$(WITH_TOOLS) scripts/fleet destroy $(STACK)

test: setup
	$(WITH_TOOLS) LAMBDA_SAE_REQUIRE_PULUMI=1 python -m pytest -q tests

lint: .venv
	.venv/bin/ruff check .

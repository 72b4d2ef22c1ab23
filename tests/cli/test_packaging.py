"""`pip install -e .` gives the `lambda-sae` command with the venv's pins (pyproject.toml [project])."""

from __future__ import annotations

import importlib
import tomllib

from tests.pulumi_support import REPO_ROOT

PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def pinned_requirements() -> set[str]:
    lines = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_the_package_pins_what_the_venv_pins() -> None:
    declared = set(PROJECT["dependencies"]) | set(PROJECT["optional-dependencies"]["test"])
    assert declared == pinned_requirements()


def test_the_console_script_is_the_dispatcher() -> None:
    module, _, name = PROJECT["scripts"]["lambda-sae"].partition(":")
    assert getattr(importlib.import_module(module), name) is importlib.import_module("lambda_provider.cli.main").main

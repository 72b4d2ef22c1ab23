"""Reads the stack config and builds the fleet (see lambda_provider/fleet/ and README "Stack config")."""

from pathlib import Path

from lambda_provider.fleet.program import main

main(Path(__file__).resolve().parent)

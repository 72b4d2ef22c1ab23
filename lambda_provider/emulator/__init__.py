"""Local Lambda Cloud emulator: a real HTTP API (`/api/v1`) plus real SSH endpoints per instance.

Run it with `python -m lambda_provider.emulator`; use it from tests with `lambda_provider.emulator.testing`.
See README.md in this folder.
"""

"""Local Lambda Cloud emulator: a real HTTP API (`/api/v1`) plus real SSH endpoints per instance.

Run it with `python -m lambda_provider.emulator`; use it from tests with `lambda_provider.emulator.testing`.
See README.md in this folder ("Code layout" maps its modules).

The emulator keeps its own copies of the domain's constants (status sets, name and tag patterns, limits, prices) on
purpose and imports nothing from the rest of `lambda_provider`: it is the oracle the client, the providers and the
fleet are tested against, and a constant shared with them would let a wrong value pass on both sides.
"""

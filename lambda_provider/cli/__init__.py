"""`lambda-sae`: the operator CLI (`python -m lambda_provider.cli` or the `lambda-sae` console script)."""

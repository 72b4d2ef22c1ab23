"""The lambda-sae policy pack for `pulumi preview|up --policy-pack policy` (lambda_provider/gitops/policy_pack.py).

The CLI runs `python -u policy/`, so this directory is first on sys.path: policy/lambda_provider is a link to the
package (no sys.path edit).
"""

from lambda_provider.gitops.policy_pack import serve

serve()

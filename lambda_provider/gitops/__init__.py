"""The GitOps pipeline: what a pull request, a merge and the schedule run (.github/workflows/, docs/gitops.md).

Every step is a module with a `python -m lambda_provider.gitops.<step>` entry point, run from the repository root:

| step              | what it does                                                                              |
|-------------------|-------------------------------------------------------------------------------------------|
| `changed_stacks`  | the stacks a change touches, as a JSON list for a workflow matrix (stdlib only)           |
| `plan`            | the cost and capacity table of `pulumi preview --json` output, in Markdown                |
| `pr_preview`      | preview one stack with the policy pack and write the PR comment (table above the diff)    |
| `policy_config`   | the policy pack's config for one stack (its budget, the repository cap, allowances)       |
| `drift_check`     | `pulumi preview --refresh --expect-no-changes` per stack, then the account's orphans      |
| `expiry_sweep`    | destroy the stacks whose `expires_at` output is past                                      |

The parts they share: `preview` (reads `pulumi preview --json`), `capacity` and `prices` (`GET /instance-types`),
`summary` and `markdown` (the table), `policies` (the validators) and `policy_pack` (the pack that policy/ serves),
`pulumi_cli` (runs the CLI). This file imports nothing, so `changed_stacks` runs without the venv.
"""

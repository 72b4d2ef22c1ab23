"""The stack budget as the plan and the policy config read it (lambda_provider/domain.py), from the two shapes the
real callers pass: `pulumi config --json` (an object value) and `pulumi preview --json` (a JSON-encoded string)."""

from __future__ import annotations

import json

from lambda_provider.domain import CAP_VARIABLE, StackBudget, stack_budget, worst_case_price

BUDGET = {"maxUsdPerHour": 5, "maxHours": 3}


def test_an_object_value_is_read() -> None:
    assert stack_budget({"lambda-sae:budget": BUDGET}) == StackBudget(5.0, 3.0)


def test_a_json_encoded_value_is_read() -> None:
    assert stack_budget({"lambda-sae:budget": json.dumps(BUDGET)}) == StackBudget(5.0, 3.0)


def test_an_absent_or_secret_budget_has_no_values() -> None:
    assert stack_budget({}) == StackBudget(None, None)
    assert stack_budget({"lambda-sae:budget": "[secret]"}) == StackBudget(None, None)


def test_a_value_that_is_not_a_number_is_none() -> None:
    assert stack_budget({"lambda-sae:budget": {"maxUsdPerHour": "lots", "maxHours": True}}) == StackBudget(None, None)


def test_the_lower_of_the_stack_budget_and_the_cap_applies() -> None:
    assert StackBudget(5.0, 3.0).capped(2.0) == (2.0, f"the repository cap {CAP_VARIABLE}")
    assert StackBudget(5.0, 3.0).capped(10.0) == (5.0, "lambda-sae:budget.maxUsdPerHour")
    assert StackBudget(5.0, 3.0).capped(None) == (5.0, "lambda-sae:budget.maxUsdPerHour")
    assert StackBudget(None, 3.0).capped(2.0) == (2.0, f"the repository cap {CAP_VARIABLE}")


def test_the_worst_case_price_is_the_most_expensive_priced_type() -> None:
    prices = {"gpu_1x_a10": 129, "gpu_1x_gh200": 229}
    assert worst_case_price(prices, ["gpu_1x_a10", "gpu_1x_gh200", "gpu_9x_future"]) == (229, "gpu_1x_gh200")


def test_no_priced_type_has_no_worst_case() -> None:
    assert worst_case_price({"gpu_1x_a10": 129}, ["gpu_9x_future"]) is None

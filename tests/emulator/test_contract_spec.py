"""Where the contract tests find the OpenAPI spec, and what they do without it: skip, fail under CI=true, fail on
a file that is not the pinned spec (tests/emulator/contract.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from . import contract


@pytest.fixture
def no_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    missing = tmp_path / "nowhere" / "openapi-1.10.0.json"
    monkeypatch.setenv(contract.SPEC_ENV, str(missing))
    return missing


def test_a_missing_spec_fails_under_ci_naming_how_to_get_it(no_spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as failed:
        contract.spec_path()
    assert f"not found at {no_spec}" in str(failed.value)
    assert "../shared/lambda-cloud/openapi-1.10.0.json" in str(failed.value)
    assert f"set {contract.SPEC_ENV}" in str(failed.value)


def test_a_missing_recorded_response_fails_under_ci(no_spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="the recorded response images_response.json not found"):
        contract.recorded("images_response.json")


def test_a_missing_spec_skips_outside_ci(no_spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not found at"):
        contract.spec_path()


def test_a_spec_that_is_not_the_pinned_one_fails_outside_ci_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "openapi.json"
    other.write_text("{}")
    monkeypatch.setenv(contract.SPEC_ENV, str(other))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.fail.Exception, match="is not the pinned Lambda Cloud OpenAPI 1.10.0 spec"):
        contract.spec_path()


def test_the_spec_and_recorded_responses_are_read_from_the_env_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = contract.spec_path()  # ../shared/ (or the caller's LAMBDA_OPENAPI_SPEC): skips or fails without it
    copy = tmp_path / "spec" / "openapi.json"
    copy.parent.mkdir()
    shutil.copyfile(pinned, copy)
    (copy.parent / "recorded").mkdir()
    (copy.parent / "recorded" / "images_response.json").write_text('{"data": []}')
    monkeypatch.setenv(contract.SPEC_ENV, str(copy))
    assert contract.spec_path() == copy
    assert contract.recorded("images_response.json") == {"data": []}

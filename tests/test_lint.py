"""The codebase stays ruff clean (pyproject.toml [tool.ruff]), a long source file says why it is one file, and a test
assert checks one fact: checked by the suite so CI enforces it."""

import ast
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--output-format", "concise", str(REPO_ROOT)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, f"ruff found problems:\n{result.stdout}{result.stderr}"


LONG_FILE_LINES = 500  # a source file longer than this says at its top why it stays one file


def test_every_long_source_file_says_why_it_is_one_file() -> None:
    names = subprocess.run(
        ["git", "ls-files", "*.py"], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    ).stdout.split()
    unexplained = []
    for name in names:
        path = REPO_ROOT / name
        if not path.is_file():
            continue
        lines = path.read_text().splitlines()
        if len(lines) > LONG_FILE_LINES and not any(line.startswith("Why one file:") for line in lines[:15]):
            unexplained.append(f"{name} ({len(lines)} lines)")
    assert not unexplained, (
        f"over {LONG_FILE_LINES} lines without a `Why one file:` line in the first 15 lines of the module docstring "
        f"(split the file, or say why it stays one): {', '.join(unexplained)}"
    )


def test_every_test_assert_checks_one_fact() -> None:
    """`assert a and b` or `assert (a, b) == (x, y)` hides which fact failed: one assert per fact."""
    chained = []
    for path in sorted((REPO_ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Assert):
                continue
            test = node.test
            and_chain = isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And)
            tuples = (
                isinstance(test, ast.Compare)
                and isinstance(test.ops[0], ast.Eq)
                and isinstance(test.left, ast.Tuple)
                and all(isinstance(c, ast.Tuple) for c in test.comparators)
            )
            if and_chain or tuples:
                chained.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert not chained, f"asserts of several facts (split them, one assert each): {', '.join(chained)}"

"""Every file a document or a code comment points at exists: repository paths, markdown links, and the Lambda notes
beside the clone, always as `../shared/lambda-cloud/NOTES.md §x`."""

from __future__ import annotations

import io
import re
import subprocess
import tokenize
from pathlib import Path

from tests.pulumi_support import REPO_ROOT

# Files whose stale references belong to changes in flight elsewhere; the fix for each is named. Remove an entry once
# its file is fixed.
PENDING: dict[str, str] = {}
TOP_LEVEL = ("lambda_provider", "tests", "training", "scripts", "docs", "policy", "stacks", ".github")
REPO_PATH = re.compile(r"(?<![\w$/.~-])((?:" + "|".join(map(re.escape, TOP_LEVEL)) + r")/[\w./-]*[\w/])(?![\w*<./-])")
BARE_NOTES = re.compile(r"(?<!\.\./shared/lambda-cloud/)NOTES(?:\.md)? §")
SHARED_WITHOUT_PARENT = re.compile(r"(?<!\.\./)(?<![\w/])shared/lambda-cloud/")
MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
PLACEHOLDER = re.compile(r"/[A-Z]\.\w+$")  # training/configs/X.yaml


def tracked(*suffixes: str) -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    return [REPO_ROOT / n for n in names.split() if n.endswith(suffixes) and (REPO_ROOT / n).is_file()]


def prose(path: Path) -> str:
    """The text a reader reads as prose: a Python file's comments and docstrings, any other file whole."""
    text = path.read_text()
    if path.suffix != ".py":
        return text
    parts, previous = [], tokenize.NEWLINE
    statement_start = (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        docstring = token.type == tokenize.STRING and previous in statement_start
        if token.type == tokenize.COMMENT or docstring:
            parts.append(token.string)
        if token.type not in (tokenize.NL, tokenize.COMMENT):
            previous = token.type
    return "\n".join(parts)


def problems(path: Path) -> list[str]:
    text, found = prose(path), []
    found += [f"bare {m.group(0)!r}: write ../shared/lambda-cloud/NOTES.md §x" for m in BARE_NOTES.finditer(text)]
    found += [f"{m.group(0)!r} without ../" for m in SHARED_WITHOUT_PARENT.finditer(text)]
    for match in REPO_PATH.finditer(text):
        ref = match.group(1)
        if not PLACEHOLDER.search(ref) and not (REPO_ROOT / ref).exists() and not (path.parent / ref).exists():
            found.append(f"{ref} does not exist")
    if path.suffix == ".md":
        for match in MARKDOWN_LINK.finditer(text):
            ref = match.group(1)
            if "://" not in ref and not ref.startswith("mailto:") and not (path.parent / ref).exists():
                found.append(f"link {ref} does not exist")
    return found


def test_every_reference_in_docs_and_comments_exists() -> None:
    found = {}
    for path in tracked(".md", ".py", ".yaml", ".yml", ".sh"):
        name = path.relative_to(REPO_ROOT).as_posix()
        if name not in PENDING and (issues := problems(path)):
            found[name] = issues
    assert found == {}


def test_a_bare_notes_reference_is_found() -> None:
    sample = REPO_ROOT / "tests" / "emulator" / "contract.py"
    assert BARE_NOTES.search("# as live (NOTES §3.6)")
    assert not BARE_NOTES.search("# as live (../shared/lambda-cloud/NOTES.md §3.6)")
    assert problems(sample) == []

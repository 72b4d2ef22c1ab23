"""`lambda-sae:data` (local files sent to the filesystem) and `lambda-sae:hfToken` (a secret for the trainers):
what the fleet sends to the nodes besides the trainer (lambda_provider/fleet/config.py parses the rest)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambda_provider.fleet.config_reader import Reader

# A `data` destination: a relative path under the filesystem's mount point, plain segments only.
DATA_DEST_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$")
DATA_RESERVED = ("runs", ".lambda-sae")  # the fleet's run directories and its own records on the filesystem


@dataclass(frozen=True)
class DataEntry:
    """One `data` entry: a local file or directory sent to `<mount point>/<dest>` on the filesystem."""

    dest: str  # relative to the filesystem's mount point
    source: Path  # absolute

    @property
    def is_dir(self) -> bool:
        return self.source.is_dir()


def parse_data(r: Reader, raw: Any, repo_root: Path) -> tuple[DataEntry, ...]:
    """`data: {dest: local path}`: every destination a plain relative path outside the fleet's own directories and
    not inside another entry; every source a readable local file or a directory holding files."""
    if raw is None:
        return ()
    example = "e.g. data: {tokens/train.npy: data/train.npy, acts/layer16: data/acts/layer16}"
    if not isinstance(raw, dict) or not raw:
        r.fail("data", "expected a non-empty mapping of <path on the filesystem>: <local path>", example)
        return ()
    entries: list[DataEntry] = []
    for dest, source in raw.items():
        key = f"data.{dest}"
        dest = str(dest).strip("/") if isinstance(dest, str) and not dest.startswith("/") else str(dest)
        if not DATA_DEST_PATTERN.match(dest) or any(part in (".", "..") for part in dest.split("/")):
            r.fail(
                key,
                f"{dest!r} is not a path relative to the filesystem",
                "name where it lands under /lambda/nfs/<filesystem.name>/, e.g. tokens/train.npy: letters, digits, "
                "'.', '_', '-' and '/' (no leading '/', no '..')",
            )
            continue
        if dest.split("/")[0] in DATA_RESERVED:
            r.fail(
                key,
                f"{dest.split('/')[0]}/ on the filesystem belongs to the fleet (run directories, its own records)",
                "send the data to another directory, e.g. data/" + dest,
            )
            continue
        if not isinstance(source, str) or not source:
            r.fail(key, f"expected a local file or directory, got {source!r}", f"set {key}: path/to/local/data")
            continue
        path = Path(source).expanduser()
        path = path if path.is_absolute() else repo_root / path
        if not path.exists():
            r.fail(
                key,
                f"{path} does not exist",
                f"point it at a local file or directory (a relative path is read from the project directory "
                f"{repo_root})",
            )
            continue
        problem = _unreadable(path)
        if problem:
            r.fail(key, problem, f"make it readable (chmod -R u+r {path}) or remove {key}")
            continue
        entries.append(DataEntry(dest, path.resolve()))
    dests = sorted(e.dest for e in entries)
    for outer in dests:
        for inner in dests:
            if inner.startswith(outer + "/"):
                r.fail(
                    f"data.{inner}",
                    f"lands inside data.{outer}, another entry",
                    f"remove one of them, or move data.{inner} outside {outer}/",
                )
    return tuple(sorted(entries, key=lambda e: e.dest))


def _unreadable(path: Path) -> str | None:
    if path.is_file():
        return None if os.access(path, os.R_OK) else f"{path} is not readable"
    if not path.is_dir():
        return f"{path} is neither a file nor a directory"
    files = 0
    for folder, _dirs, names in os.walk(path):
        for name in names:
            child = Path(folder) / name
            if not child.is_file():
                continue  # a socket, a broken link: not data
            if not os.access(child, os.R_OK):
                return f"{child} is not readable"
            files += 1
    return None if files else f"{path} is an empty directory (nothing to send)"


def parse_hf_token(r: Reader, raw: Any, secret: bool) -> str | None:
    """Never echoes the value: a problem names the key and the fix only."""
    if raw is None:
        return None
    set_it = "`pulumi config set --secret lambda-sae:hfToken <your Hugging Face token>`"
    if not isinstance(raw, str) or not raw.strip() or any(c.isspace() for c in raw.strip()):
        r.fail("hfToken", "expected a Hugging Face access token (one word, e.g. hf_...)", set_it)
        return None
    if not secret:
        r.fail(
            "hfToken",
            "is stored in clear in the stack file, where anyone who reads the repository or the state sees it",
            f"`pulumi config rm lambda-sae:hfToken`, revoke that token, then {set_it}",
        )
        return None
    return raw.strip()

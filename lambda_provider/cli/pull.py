"""`lambda-sae pull [DIR] [--checkpoints]`: download the run's exported SAE, its config, metrics, summary and curves
(SFTP from the head, host key pinned), verify them against the SHA256SUMS the trainer wrote, say how to load it.
The optimizer checkpoints stay on the filesystem unless asked for."""

from __future__ import annotations

import argparse
import json
import posixpath
import shlex
from pathlib import Path
from typing import Any

import asyncssh

from lambda_provider.cli import nodes
from lambda_provider.cli.progress import training_line
from lambda_provider.cli.summary import train_on_cache
from lambda_provider.cli.workspace import WorkspaceError
from lambda_provider.fleet.training_run import RUN_RECORD
from training.changes import is_cache_task
from training.outputs import EXPORTED_FILES, SUMS_FILE, file_sha256, parse_sums

# The PII probe stage's report (lambda-sae:probe), written next to the SAE after the run; not summed.
PROBE_FILES = ("probe_report.json", "probe_report.md", "probe_pr.png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", help="where to put the files (default: results/<stack>-<run name>)")
    parser.add_argument("--checkpoints", action="store_true", help="also the optimizer checkpoints (large)")


def verify(local: Path, sums: dict[str, str]) -> list[str]:
    """Problems with `local` against `sums` (empty: every summed file is there with its sum)."""
    problems = []
    for name, digest in sums.items():
        path = local / name
        if not path.is_file():
            problems.append(f"{name}: listed in {SUMS_FILE} but not downloaded")
        elif file_sha256(path) != digest:
            problems.append(f"{name}: sha256 {file_sha256(path)[:12]}... differs from {SUMS_FILE}'s {digest[:12]}...")
    return problems


async def _read_json(sftp: asyncssh.SFTPClient, path: str) -> dict[str, Any]:
    try:
        async with sftp.open(path, "rb") as handle:
            return json.loads(await handle.read())
    except (asyncssh.SFTPError, ValueError):
        return {}


def nothing_to_pull(node: str, run_dir: str, stack: str, status: dict[str, Any], record: dict[str, Any]) -> str:
    """Why a run directory without SHA256SUMS has nothing to pull yet, or ever: `status` is its status.json, `record`
    the fleet-run.json the fleet wrote at launch (its `task` names a cache run)."""
    progress = training_line(status, False)
    if is_cache_task(record.get("task")):
        use = (
            f"train on it with {train_on_cache(run_dir)} in the stack's training.overrides "
            "(without training.cache), then pull that run"
        )
        if status.get("state") == "finished":
            manifests = ", ".join(status.get("manifests") or []) or "no manifest listed"
            return (
                f"node {node}: {run_dir} is an activation cache (training.cache), not an SAE: "
                f"{status.get('vectors', 0):,} vectors ({manifests}). It stays on the filesystem; {use}"
            )
        return (
            f"node {node}: {run_dir} is an activation cache (training.cache) and exports no SAE ({progress}); "
            f"once `lambda-sae status --stack {stack}` shows it finished, {use}"
        )
    return (
        f"node {node}: no {SUMS_FILE} in {run_dir}: the run has not exported its SAE yet ({progress}); "
        f"pull again once `lambda-sae status --stack {stack}` shows it finished or stopped"
    )


def run(args: argparse.Namespace) -> int:
    fleet = nodes.load(args.stack)
    head = fleet.node(None)
    run_dir = fleet.run_dir
    local = Path(args.dir or f"results/{fleet.stack}-{posixpath.basename(run_dir)}")

    async def pull_dir(sftp: asyncssh.SFTPClient, remote_dir: str, into: Path, prefix: str) -> dict[str, str]:
        """One exported SAE's files (its SHA256SUMS first); sums keyed by path relative to `local`."""
        into.mkdir(parents=True, exist_ok=True)
        await sftp.get(posixpath.join(remote_dir, SUMS_FILE), str(into / SUMS_FILE))
        sums = parse_sums((into / SUMS_FILE).read_text())
        for name in dict.fromkeys([*sums, *EXPORTED_FILES, "status.json", *PROBE_FILES]):
            path = posixpath.join(remote_dir, name)
            if await sftp.isfile(path):
                await sftp.get(path, str(into / name))
        return {prefix + name: digest for name, digest in sums.items()}

    async def download(ssh: asyncssh.SSHClientConnection) -> dict[str, str]:
        async with ssh.start_sftp_client() as sftp:
            # One SAE exports into the run directory; a run of several (`saes`) into one subdirectory each.
            single = await sftp.isfile(posixpath.join(run_dir, SUMS_FILE))
            members = (
                []
                if single
                else [
                    entry.filename
                    for entry in await sftp.readdir(run_dir)
                    if entry.filename not in (".", "..")
                    and await sftp.isfile(posixpath.join(run_dir, entry.filename, SUMS_FILE))
                ]
            )
            if not single and not members:
                status = await _read_json(sftp, posixpath.join(run_dir, "status.json"))
                record = await _read_json(sftp, posixpath.join(run_dir, RUN_RECORD))
                raise WorkspaceError(nothing_to_pull(head.node, run_dir, fleet.stack, status, record))
            if members:
                sums: dict[str, str] = {}
                for member in sorted(members):
                    sums |= await pull_dir(sftp, posixpath.join(run_dir, member), local / member, f"{member}/")
                for name in ("status.json", "summary.json"):
                    if await sftp.isfile(posixpath.join(run_dir, name)):
                        await sftp.get(posixpath.join(run_dir, name), str(local / name))
            else:
                sums = await pull_dir(sftp, run_dir, local, "")
            if args.checkpoints and await sftp.isdir(posixpath.join(run_dir, "checkpoints")):
                await sftp.get(posixpath.join(run_dir, "checkpoints"), str(local), recurse=True)
            return sums

    sums = nodes.on_node(fleet, head, download)
    problems = verify(local, sums)
    if problems:
        print(
            f"lambda-sae pull: {local} does not match the run's {SUMS_FILE}:\n  "
            + "\n  ".join(problems)
            + f"\n  run `lambda-sae pull {shlex.quote(str(local))} --stack {fleet.stack}` again (a run still "
            "exporting rewrites its files)"
        )
        return 1
    print(f"pulled {run_dir} from {head.node} into {local}/ ({len(sums)} files, sha256 verified against {SUMS_FILE}):")
    for path in sorted(p for p in local.rglob("*") if p.is_file() and "checkpoints" not in p.parts):
        name = path.relative_to(local).as_posix()
        mark = "sha256 ok" if name in sums else ""
        print(f"  {name:<22} {path.stat().st_size:>12,} B  {mark}".rstrip())
    if args.checkpoints:
        print("  checkpoints/           (optimizer state, not summed)")
    else:
        print(
            f"  checkpoints/ (optimizer state, large) not pulled: `lambda-sae pull {shlex.quote(str(local))} "
            f"--checkpoints --stack {fleet.stack}`"
        )
    members = sorted({name.split("/", 1)[0] for name in sums if "/" in name})
    where = str(local / members[0]) if members else str(local)
    print(
        f"load it:\n  from training.outputs import load_sae\n  sae = load_sae({where!r})"
        + (f"  # one of {', '.join(members)}" if members else "")
        + "\n  codes = sae.codes(activations)  # [n, d_sae] latent activations"
    )
    return 0

"""`DataUpload`: the stack's `data` entries (local files and directories) onto the fleet's filesystem, once per content.

Why one file: the manifest, the plan line and the node scripts that append to the manifest are one protocol.

The filesystem keeps a manifest, `<mount>/.lambda-sae/data-manifest.jsonl`: one JSON line per file sent or removed
(`{"path", "sha256", "size"}` or `{"path", "removed": true}`, paths relative to the mount; the last line of a path
wins). The program hashes the local files (a digest cache keyed by size and mtime keeps a second preview from
re-reading them); the resource compares them with the manifest it reads over SFTP from the head node.

`check` (preview and up) reads the manifest (bounded; a head that cannot be reached yet reads as an empty one) and
puts the plan in `change`, one human line that `pulumi preview --diff` shows: how many files and bytes will be sent,
which, and what is up to date. `create`/`update` then send exactly what the manifest lacks: each file to
`<dest>.part-<sha12>` with a window of SFTP writes in flight, verified by its sha256 on the node, renamed into place
and recorded in the manifest (per batch, so an interrupted `up` keeps what it finished); a partial file of the same
content is resumed, not sent again. Files once sent under a directory entry that its local directory no longer has
are removed (only those: files the fleet never sent are never touched); an entry dropped from the stack leaves its
files on the filesystem. Progress records (`kind: data`) go to the operator CLI's live view every few seconds.

Failures are recorded, not raised (`ok: false`, `error`), like the node steps (see node_step.py): the training run
requires `ok` and is skipped, and the program turns the error into a failed update.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import json
import os
import posixpath
import shlex
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import pulumi
from pulumi.dynamic import CheckResult, CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from lambda_provider import progress
from lambda_provider.fleet.config import DataEntry, FleetConfig
from lambda_provider.fleet.node_step import StepFailed, failure_cause
from lambda_provider.fleet.remote import (
    AuthenticationRefused,
    Connection,
    HostKeyMismatch,
    NodeUnreachable,
    connect,
    run_on,
)
from lambda_provider.resources.values import is_unknown

MANIFEST = ".lambda-sae/data-manifest.jsonl"
CHUNK = 256 * 1024  # bytes per SFTP write
WINDOW = 16  # writes in flight per file: enough to fill a long link, and what a resume re-sends at most
PARALLEL_FILES = 4
BATCH_FILES = 64  # files verified, renamed and recorded per remote command
BATCH_BYTES = 1 << 30
PROGRESS_SECONDS = 2.0
VIEW_CONNECT_SECONDS = 8.0
LISTED = 3  # files named in the `change` line


# ------------------------------------------------------------------ the local side (program time)
def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class DigestCache:
    """sha256 of local files keyed by (size, mtime_ns): a preview does not re-read an unchanged corpus."""

    path: Path | None
    known: dict[str, list[Any]] = field(default_factory=dict)
    dirty: bool = False

    @classmethod
    def load(cls, path: Path | None) -> DigestCache:
        try:
            known = json.loads(path.read_text()) if path else {}
        except (OSError, ValueError):
            known = {}
        return cls(path, known if isinstance(known, dict) else {})

    def sha256(self, file: Path) -> tuple[str, int]:
        stat = file.stat()
        key = str(file)
        hit = self.known.get(key)
        if isinstance(hit, list) and hit[:2] == [stat.st_size, stat.st_mtime_ns]:
            return str(hit[2]), stat.st_size
        sha = _sha256(file)
        self.known[key] = [stat.st_size, stat.st_mtime_ns, sha]
        self.dirty = True
        return sha, stat.st_size

    def save(self) -> None:
        if not self.dirty or self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(self.known))
            tmp.replace(self.path)
        except OSError:
            pass  # a cache: the next preview hashes again


def local_files(entries: Iterable[DataEntry], cache: DigestCache) -> list[dict[str, Any]]:
    """Every file the entries send: `path` (relative to the mount), `local`, `size`, `sha256`; sorted by path."""
    files = []
    for entry in entries:
        if entry.source.is_file():
            sources = [(entry.dest, entry.source)]
        else:
            sources = []
            for folder, dirs, names in os.walk(entry.source):
                dirs.sort()
                for name in sorted(names):
                    child = Path(folder) / name
                    if child.is_file():
                        rel = child.relative_to(entry.source).as_posix()
                        sources.append((f"{entry.dest}/{rel}", child))
        for dest, source in sources:
            sha, size = cache.sha256(source)
            files.append({"path": dest, "local": str(source), "size": size, "sha256": sha})
    cache.save()
    return sorted(files, key=lambda f: f["path"])


def digest_of_files_read(files: list[dict[str, Any]], trainer_config: Any, mount: str) -> str | None:
    """A digest of the uploaded files the trainer config names under `mount` (a file, a directory above files, or a
    glob), or None when it names none: a change of it is a change of the run's data (a fresh run)."""
    refs: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, str) and value.startswith(f"{mount}/"):
            refs.append(value[len(mount) + 1 :].rstrip("/"))
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)

    collect(trainer_config)
    read = sorted(
        (f["path"], f["sha256"])
        for f in files
        if any(f["path"] == r or f["path"].startswith(f"{r}/") or fnmatch.fnmatchcase(f["path"], r) for r in refs)
    )
    return hashlib.sha256(json.dumps(read).encode()).hexdigest()[:16] if read else None


# ------------------------------------------------------------------ the plan
def parse_manifest(text: str) -> dict[str, dict[str, Any]]:
    """The manifest's files: the last line of each path wins; a `removed` line drops it."""
    files: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by an interrupted append
        if not isinstance(record, dict) or not isinstance(record.get("path"), str):
            continue
        if record.get("removed"):
            files.pop(record["path"], None)
        else:
            files[record["path"]] = record
    return files


@dataclass(frozen=True)
class Plan:
    send: tuple[dict[str, Any], ...]
    remove: tuple[str, ...]
    files: int
    bytes: int
    known: bool  # False: the manifest could not be read (a new head), what is sent is decided at up

    @property
    def send_bytes(self) -> int:
        return sum(int(f["size"]) for f in self.send)

    @property
    def action(self) -> str:
        return "send" if self.send or self.remove else "none"

    def line(self) -> str:
        total = f"{self.files} file(s), {human_bytes(self.bytes)}"
        if not self.known:
            return (
                f"data: at most {total} to send (the filesystem's manifest is read once the head node is up; "
                "what it holds already is not sent again)"
            )
        if not self.send and not self.remove:
            return f"data: nothing to send; {total} up to date"
        parts = []
        if self.send:
            names = ", ".join(f["path"] for f in self.send[:LISTED])
            more = f" and {len(self.send) - LISTED} more" if len(self.send) > LISTED else ""
            parts.append(f"send {len(self.send)} file(s), {human_bytes(self.send_bytes)} ({names}{more})")
        if self.remove:
            parts.append(f"remove {len(self.remove)} file(s) gone from their local directory")
        up_to_date = self.files - len(self.send)
        return f"data: {'; '.join(parts)}; {up_to_date} of {self.files} file(s) up to date"


def make_plan(files: list[dict[str, Any]], directories: list[str], manifest: dict[str, dict[str, Any]] | None) -> Plan:
    total = sum(int(f["size"]) for f in files)
    if manifest is None:
        return Plan(tuple(files), (), len(files), total, known=False)
    send = tuple(
        f
        for f in files
        if (m := manifest.get(f["path"])) is None or m.get("sha256") != f["sha256"] or m.get("size") != f["size"]
    )
    wanted = {f["path"] for f in files}
    remove = tuple(sorted(p for p in manifest if p not in wanted and any(p.startswith(d + "/") for d in directories)))
    return Plan(send, remove, len(files), total, known=True)


# ------------------------------------------------------------------ the remote side
def _remote(mount: str, rel: str) -> str:
    return posixpath.join(mount, rel)


def _shell_path(path: str) -> str:
    """A filesystem path as the node's shell sees it (the emulator roots the instance at $LAMBDA_INSTANCE_ROOT)."""
    return f'"${{LAMBDA_INSTANCE_ROOT:-}}"{shlex.quote(path)}'


async def read_manifest(sftp: asyncssh.SFTPClient, mount: str) -> dict[str, dict[str, Any]]:
    try:
        async with sftp.open(_remote(mount, MANIFEST), "rb") as handle:
            text = (await handle.read()).decode(errors="replace")
    except asyncssh.SFTPNoSuchFile:
        return {}
    return parse_manifest(text)


async def _sh(ssh: asyncssh.SSHClientConnection, script: str, what: str) -> str:
    result = await run_on(ssh, script, timeout=3600)
    if result.exit_status != 0:
        raise StepFailed(f"data: {what} failed on the head node: {failure_cause(result.output_tail)}")
    return result.output_tail


@dataclass
class Progress:
    files: int
    bytes: int
    sent_bytes: int = 0
    resumed_bytes: int = 0  # found on the filesystem in partial files, not sent again
    done_files: int = 0
    started: float = field(default_factory=time.monotonic)

    def emit(self, state: str = "sending") -> None:
        seconds = max(time.monotonic() - self.started, 1e-6)
        progress.emit(
            "data",
            state=state,
            files=self.files,
            done_files=self.done_files,
            bytes=self.bytes,
            sent_bytes=self.sent_bytes,
            bytes_per_second=round(self.sent_bytes / seconds),
        )


def _partial(mount: str, f: dict[str, Any]) -> str:
    return _remote(mount, f"{f['path']}.part-{str(f['sha256'])[:12]}")


async def _send_file(sftp: asyncssh.SFTPClient, mount: str, f: dict[str, Any], seen: Progress) -> None:
    """Send one file to its partial path, resuming a partial copy of the same content (its last window of writes
    may have holes: that window is sent again)."""
    partial, size = _partial(mount, f), int(f["size"])
    try:
        have = int((await sftp.stat(partial)).size or 0)
    except asyncssh.SFTPNoSuchFile:
        have = 0
    start = 0 if have > size else max(0, have - WINDOW * CHUNK) // CHUNK * CHUNK
    seen.sent_bytes += start  # already there
    seen.resumed_bytes += start
    slots = asyncio.Semaphore(WINDOW)
    pending: set[asyncio.Task[None]] = set()
    errors: list[BaseException] = []

    def finished(task: asyncio.Task[None]) -> None:
        pending.discard(task)
        slots.release()
        error = None if task.cancelled() else task.exception()
        if error is not None:
            errors.append(error)

    async def write(handle: asyncssh.SFTPClientFile, data: bytes, offset: int) -> None:
        await handle.write(data, offset)
        seen.sent_bytes += len(data)

    async with sftp.open(partial, "r+b" if start else "wb") as handle:
        try:
            with open(f["local"], "rb") as source:
                source.seek(start)
                offset = start
                while not errors and (data := source.read(CHUNK)):
                    await slots.acquire()
                    task = asyncio.create_task(write(handle, data, offset))
                    pending.add(task)
                    task.add_done_callback(finished)
                    offset += len(data)
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            for task in list(pending):
                task.cancel()
    if errors:
        raise errors[0]


def _finish_script(mount: str, batch: list[dict[str, Any]]) -> str:
    """Verify each sent file by its sha256 on the node, move it into place and record it in the manifest."""
    lines = [
        "set -u",
        'h() { sha256sum "$1" 2>/dev/null || shasum -a 256 "$1"; }',
        f"m={_shell_path(_remote(mount, MANIFEST))}",
        'mkdir -p "$(dirname "$m")"',
        "bad=0",
    ]
    for f in batch:
        record = json.dumps({"path": f["path"], "sha256": f["sha256"], "size": f["size"]})
        part, final = _shell_path(_partial(mount, f)), _shell_path(_remote(mount, f["path"]))
        lines.append(
            f'got="$(h {part} | cut -c1-64)"; if [ "$got" = {f["sha256"]} ]; then mv -f {part} {final} && '
            f'printf "%s\\n" {shlex.quote(record)} >> "$m" || bad=1; '
            f'else rm -f {part}; echo "MISMATCH {f["path"]} $got"; bad=1; fi'
        )
    lines.append('[ "$bad" = 0 ] || echo "FLEET-ERROR: some files did not arrive intact"')
    lines.append('exit "$bad"')
    return "\n".join(lines)


def _remove_script(mount: str, paths: tuple[str, ...]) -> str:
    lines = ["set -eu", f"m={_shell_path(_remote(mount, MANIFEST))}"]
    for path in paths:
        record = json.dumps({"path": path, "removed": True})
        lines.append(f'rm -f {_shell_path(_remote(mount, path))}; printf "%s\\n" {shlex.quote(record)} >> "$m"')
    return "\n".join(lines)


def _batches(files: tuple[dict[str, Any], ...]) -> list[list[dict[str, Any]]]:
    batches: list[list[dict[str, Any]]] = [[]]
    size = 0
    for f in files:
        if batches[-1] and (len(batches[-1]) >= BATCH_FILES or size + int(f["size"]) > BATCH_BYTES):
            batches.append([])
            size = 0
        batches[-1].append(f)
        size += int(f["size"])
    return [b for b in batches if b]


async def _send(ssh: asyncssh.SSHClientConnection, sftp: asyncssh.SFTPClient, mount: str, plan: Plan) -> Progress:
    seen = Progress(len(plan.send), plan.send_bytes)

    async def report() -> None:
        while True:
            await asyncio.sleep(PROGRESS_SECONDS)
            seen.emit()

    reporter = asyncio.create_task(report())
    slots = asyncio.Semaphore(PARALLEL_FILES)

    async def one(f: dict[str, Any]) -> None:
        async with slots:
            await _send_file(sftp, mount, f, seen)

    try:
        for batch in _batches(plan.send):
            parents = sorted({posixpath.dirname(_remote(mount, f["path"])) for f in batch})
            await _sh(ssh, "mkdir -p " + " ".join(_shell_path(p) for p in parents), "making the data directories")
            await asyncio.gather(*(one(f) for f in batch))
            result = await run_on(ssh, _finish_script(mount, batch), timeout=3600)
            if result.exit_status != 0:
                bad = [line.split()[1] for line in result.output_tail.splitlines() if line.startswith("MISMATCH ")]
                raise StepFailed(
                    f"data: {', '.join(bad) or 'a file'} arrived on the filesystem with another sha256 than the "
                    "local file (changed while it was sent, or damaged on the way); the partial copy is removed "
                    f"and the next `up` sends it again: {failure_cause(result.output_tail)}"
                )
            seen.done_files += len(batch)
        seen.emit("sent")
    finally:
        reporter.cancel()
    return seen


async def _open(raw: dict[str, Any], timeout: float) -> asyncssh.SSHClientConnection:
    try:
        return await connect(Connection.from_props(raw), timeout)
    except (NodeUnreachable, HostKeyMismatch, AuthenticationRefused) as exc:
        raise StepFailed(f"data: cannot reach the head node: {exc}") from None


async def _observe(props: dict[str, Any], timeout: float) -> dict[str, dict[str, Any]]:
    ssh = await _open(props["connection"], timeout)
    async with ssh, ssh.start_sftp_client() as sftp:
        return await read_manifest(sftp, props["mount"])


async def _converge(props: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    ssh = await _open(props["connection"], float(props.get("connect_timeout_seconds") or 60.0))
    async with ssh, ssh.start_sftp_client() as sftp:
        mount = props["mount"]
        plan = make_plan(props["files"], props.get("directories") or [], await read_manifest(sftp, mount))
        resumed = (await _send(ssh, sftp, mount, plan)).resumed_bytes if plan.send else 0
        if plan.remove:
            await _sh(ssh, _remove_script(mount, plan.remove), "removing files gone from their local directory")
    return {
        "sent_files": len(plan.send),
        "sent_bytes": plan.send_bytes - resumed,
        "resumed_bytes": resumed,
        "removed_files": len(plan.remove),
        "up_to_date_files": plan.files - len(plan.send),
        "seconds": round(time.monotonic() - started, 2),
    }


# ------------------------------------------------------------------ the provider
def _known(raw: Any) -> bool:
    return isinstance(raw, dict) and not is_unknown(raw) and bool(raw.get("host"))


def _address(props: dict[str, Any]) -> tuple[Any, Any]:
    conn = props.get("connection")
    return (conn.get("host"), conn.get("port")) if _known(conn) else ("unknown", "unknown")


class DataUploadProvider(ResourceProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        if is_unknown(news.get("files")):
            return CheckResult(news, [])
        source = news if _known(news.get("connection")) else olds if _known((olds or {}).get("connection")) else None
        manifest = None
        if source is not None and (olds or {}).get("mount", news["mount"]) == news["mount"]:
            try:
                manifest = asyncio.run(_observe({**source, "mount": news["mount"]}, VIEW_CONNECT_SECONDS))
            except Exception:  # noqa: BLE001 - a preview that cannot read the head plans from the stack alone
                manifest = None
        plan = make_plan(news["files"], news.get("directories") or [], manifest)
        return CheckResult({**news, "action": plan.action if plan.known else "unknown", "change": plan.line()}, [])

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ("files", "directories", "mount", "requires") if olds.get(k) != news.get(k)]
        return DiffResult(
            changes=bool(
                changed or news.get("action") != "none" or olds.get("ok") is False or _address(olds) != _address(news)
            ),
            replaces=[],
            delete_before_replace=True,
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(f"data/{props['mount']}", self._attempt(props))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._attempt(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)  # what is on the filesystem is read by the next check, at preview or up

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        return None  # the data stays on the filesystem (kept or deleted with it: filesystem.deleteOnDestroy)

    @staticmethod
    def _attempt(props: dict[str, Any]) -> dict[str, Any]:
        outs = {k: v for k, v in props.items() if k != "__provider"}
        if any(ok is False for ok in props.get("requires") or []):
            return {**outs, "ok": False, "skipped": True, "error": None, "sent": None}
        try:
            sent = asyncio.run(_converge(props))
        except Exception as exc:  # noqa: BLE001 - recorded, see the module docstring
            message = str(exc) if isinstance(exc, StepFailed) else f"data: {type(exc).__name__}: {exc}"
            return {**outs, "ok": False, "skipped": False, "error": message, "sent": None}
        return {**outs, "ok": True, "skipped": False, "error": None, "sent": sent}


class DataUpload(Resource, module="fleet", name="DataUpload"):
    """Type token `pulumi-python:dynamic/fleet:DataUpload`; outputs `ok`, `error`, `change` (the plan's line) and
    `sent` (files and bytes sent by the last update, seconds)."""

    ok: pulumi.Output[bool]
    skipped: pulumi.Output[bool]
    error: pulumi.Output[str | None]
    change: pulumi.Output[str]
    sent: pulumi.Output[dict[str, Any] | None]

    def __init__(
        self,
        resource_name: str,
        *,
        connection: pulumi.Input[dict[str, Any]],
        mount: str,
        entries: tuple[DataEntry, ...],
        cache_path: Path | None,
        requires: list[Any] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "connection": connection,
            "mount": mount,
            "files": local_files(entries, DigestCache.load(cache_path)),
            "directories": [e.dest for e in entries if e.is_dir],
            "requires": requires or [],
            "action": None,
            "change": None,
            "ok": None,
            "skipped": None,
            "error": None,
            "sent": None,
        }
        self.local_files: list[dict[str, Any]] = props["files"]  # for the training run's data digest
        ours = pulumi.ResourceOptions(additional_secret_outputs=["connection"])
        super().__init__(DataUploadProvider(), resource_name, props, pulumi.ResourceOptions.merge(opts, ours))
        pulumi.Output.all(self.error, self.skipped).apply(_report_error)


def _report_error(values: list[Any]) -> None:
    """Fail the update (non-zero exit) once the failure is recorded in state; a skip is the earlier step's failure."""
    error, skipped = values
    if error and not skipped:
        raise pulumi.RunError(f"{error}\n(the next `pulumi up` sends what is still missing)")


def fleet_data(
    config: FleetConfig,
    mount: str,
    head_connection: pulumi.Input[dict[str, Any]],
    head_ok: pulumi.Input[bool],
    nodes_ready: pulumi.Resource,
    repo_root: Path,
    parent: pulumi.Resource,
) -> list[DataUpload]:
    """The fleet's `data` upload over the head node once the nodes are ready and set up (`nodes_ready`, the fleet's
    FleetNodes), or nothing when the stack has no `data`. The training run requires its `ok`."""
    if not config.data:
        return []
    return [
        DataUpload(
            "data",
            connection=head_connection,
            mount=mount,
            entries=config.data,
            cache_path=repo_root / ".lambda-sae" / "data-digests.json",
            requires=[head_ok],
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[nodes_ready]),
        )
    ]

"""`NodeStep`: a command run on a node over SSH as a Pulumi dynamic resource -- our stand-in for pulumi-command's
`remote.Command` + `remote.CopyToRemote` (whose provider plugin cannot be built here).

Semantics follow remote.Command: `create` runs on create, `update` (default: `create`) when an input changes,
`delete` on delete; any change of `triggers` or of the node's address replaces the step (delete first: two copies of
a training launch must never run at once). Unlike remote.Command, output is not buffered into state: the scripts log
to files on the node, and state keeps only `result` (from `@fleet key=value` / `@fleet-json {...}` lines) and a short
tail. `read` (refresh) drops the step when its node is gone and re-runs the optional `read` script.

A failed step is recorded, not raised: `ok: false` and `error` (naming the node, the step and the cause) are its
outputs, the program turns them into an error diagnostic (so `pulumi up` fails), later steps of the node are skipped,
and the next `up` runs the step again. Why: with this toolchain, a provider exception while dependents are still
registering leaves the Python program hanging; recorded failures also keep what a step
found on the node visible in state.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shlex
from pathlib import Path
from typing import Any

import asyncssh
import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from lambda_provider.fleet.remote import (
    AuthenticationRefused,
    Connection,
    HostKeyMismatch,
    NodeUnreachable,
    RemoteResult,
    connect,
    run_on,
    server_host_key,
    tar_directory,
    uploaded,
)
from lambda_provider.resources.values import is_unknown

STATE_TAIL_CHARS = 800
DELETE_CONNECT_TIMEOUT = 20.0
READ_CONNECT_TIMEOUT = 15.0


class StepFailed(RuntimeError):
    pass


def parse_result(output: str) -> dict[str, Any]:
    """`@fleet key=value` and `@fleet-json {...}` lines of a script's output, merged in order."""
    result: dict[str, Any] = {}
    for line in output.splitlines():
        if line.startswith("@fleet-json "):
            try:
                loaded = json.loads(line[len("@fleet-json ") :])
            except ValueError:
                continue
            if isinstance(loaded, dict):
                result.update(loaded)
        elif line.startswith("@fleet "):
            key, _, value = line[len("@fleet ") :].partition("=")
            result[key.strip()] = value.strip()
    return result


def visible_tail(output: str, limit: int = STATE_TAIL_CHARS) -> str:
    lines = [line for line in output.splitlines() if not line.startswith("@fleet")]
    return "\n".join(lines)[-limit:]


def failure_cause(output: str) -> str:
    errors = [line.split("FLEET-ERROR:", 1)[1].strip() for line in output.splitlines() if "FLEET-ERROR:" in line]
    if errors:
        return errors[-1]
    lines = [line for line in output.splitlines() if line.strip() and not line.startswith("@fleet")]
    return lines[-1].strip() if lines else "no output"


def _shell_value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # the engine hands integers over as floats
    return shlex.quote(str(value))


def with_environment(script: str, environment: dict[str, Any] | None) -> str:
    exports = "".join(f"export {k}={_shell_value(v)}\n" for k, v in sorted((environment or {}).items()))
    return exports + script


def with_secret_environment(script: str, secrets: dict[str, str]) -> tuple[str, bytes]:
    """`script` with `secrets` exported from the session's stdin, and that stdin: a secret never appears on a command
    line (a remote shell's arguments are visible to every process on the node, and to logs that record commands)."""
    names = sorted(secrets)
    for name in names:
        if not name.isidentifier() or any(c in secrets[name] for c in "\r\n"):
            raise ValueError(f"secret environment variable {name!r}: a name and a one-line value are required")
    prelude = "".join(f"IFS= read -r {name} || true; export {name}\n" for name in names)
    return prelude + script, "".join(f"{secrets[name]}\n" for name in names).encode()


def upload_command(remote_dir: str) -> str:
    """Unpack a tarball from stdin into `remote_dir` (replaced as a whole, so deleted files disappear too)."""
    quoted = remote_dir if remote_dir.startswith("$") else shlex.quote(remote_dir)
    return (
        f'd={quoted}; mkdir -p "$(dirname "$d")" && rm -rf "$d.new" && mkdir "$d.new" && '
        f'tar -xzf - -C "$d.new" && rm -rf "$d" && mv "$d.new" "$d"'
    )


def directory_digest(local_dir: Path, skip: tuple[str, ...] = ()) -> str:
    """Of what the upload sends (`skip`: top-level entries left out of the digest, not of the upload)."""
    digest = hashlib.sha256()
    for path in sorted(local_dir.rglob("*")):
        rel = path.relative_to(local_dir)
        if rel.parts[0] in skip:
            continue
        if path.is_file() and uploaded(rel):
            digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


class NodeStepProvider(ResourceProvider):
    """Stateless; everything a call needs is in its inputs (the private key arrives as a decrypted secret)."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        from pulumi.dynamic import CheckFailure, CheckResult

        failures = []
        if not is_unknown(news.get("create")) and not isinstance(news.get("create"), str):
            failures.append(CheckFailure("create", "create must be a shell script"))
        return CheckResult(news, failures)

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = []
        if _address(olds) != _address(news) or is_unknown(news.get("connection")):
            replaces.append("connection")
        if olds.get("triggers") != news.get("triggers") or is_unknown(news.get("triggers")):
            replaces.append("triggers")
        changed = [
            k
            for k in (
                "create",
                "update",
                "delete",
                "read",
                "environment",
                "upload",
                "timeout_seconds",
                "requires",
                "describes",
            )
            if olds.get(k) != news.get(k)
        ]
        connection_changed = olds.get("connection") != news.get("connection")
        needs_rerun = bool((olds.get("result") or {}).get("needs_rerun")) or olds.get("ok") is False
        return DiffResult(
            changes=bool(replaces or changed or connection_changed or needs_rerun),
            replaces=replaces,
            delete_before_replace=True,
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._outcome(props, props["create"])
        return CreateResult(f"{props['node']}/{props['step']}", outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        conn = news.get("connection")
        same_node = _address(olds) == _address(news)
        if isinstance(conn, dict) and not conn.get("host_key") and olds.get("host_key") and same_node:
            news = {**news, "connection": {**conn, "host_key": olds["host_key"]}}  # keep trusting this node's key
        return UpdateResult(self._outcome(news, news.get("update") or news["create"]))

    def _outcome(self, props: dict[str, Any], script: str) -> dict[str, Any]:
        blocked = [ok for ok in (props.get("requires") or []) if ok is False]
        if blocked:
            error = f"node {props['node']}: {props['step']} skipped: an earlier step failed"
            return self._failed(props, error, skipped=True)
        try:
            return self._run(props, script)
        except Exception as exc:  # noqa: BLE001 - recorded as the step's error (see the module docstring)
            message = (
                str(exc)
                if isinstance(exc, StepFailed)
                else (f"node {props['node']}: {props['step']}: {type(exc).__name__}: {exc}")
            )
            return self._failed(props, message)

    @staticmethod
    def _failed(props: dict[str, Any], error: str, skipped: bool = False) -> dict[str, Any]:
        outs = {k: v for k, v in props.items() if k != "__provider"}
        outs.update(
            {
                "ok": False,
                "error": error,
                "skipped": skipped,
                "result": {"needs_rerun": True},
                "output_tail": None,
                "exit_status": None,
            }
        )
        return outs

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        script = props.get("delete")
        if not script:
            return
        conn = Connection.from_props(props["connection"])
        command = with_environment(script, props.get("environment"))
        try:
            asyncio.run(_connect_and_run(conn, command, None, _timeout(props), DELETE_CONNECT_TIMEOUT))
        except (NodeUnreachable, OSError, asyncssh.Error):
            return  # the node is gone (terminated or replaced): nothing left to stop
        except (HostKeyMismatch, AuthenticationRefused) as exc:
            pulumi.log.warn(f"node {props.get('node')}: {props.get('step')}: skipped on delete: {exc}")
            return
        # A failing delete script (e.g. a trainer that had to be killed) is not raised: the node is being torn down
        # and a raise here would leave the resource in state forever.

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        conn = Connection.from_props(props["connection"])
        script = props.get("read") or "true"
        command = with_environment(script, props.get("environment"))
        try:
            result, _ = asyncio.run(_connect_and_run(conn, command, None, 120.0, READ_CONNECT_TIMEOUT))
        except NodeUnreachable:
            return ReadResult(None, {})  # node gone outside Pulumi: drop the step, the next up runs it again
        outs = dict(props)
        if props.get("read"):
            outs["result"] = {**(props.get("result") or {}), **parse_result(result.output_tail)}
        return ReadResult(id_, outs)

    def _run(self, props: dict[str, Any], script: str) -> dict[str, Any]:
        node, step = props["node"], props["step"]
        raw_conn = props["connection"]
        if raw_conn.get("ready") is False or not raw_conn.get("host"):
            raise StepFailed(
                f"node {node}: {step}: the instance is not ready (status "
                f"{raw_conn.get('status') or 'unknown'}, ip {raw_conn.get('host') or 'none yet'}); "
                "see the instance's boot_error"
            )
        conn = Connection.from_props(raw_conn)
        upload = props.get("upload") or None
        stdin = None
        command = with_environment(script, props.get("environment"))
        if upload:
            stdin = tar_directory(Path(upload["local_dir"]))
            command = upload_command(upload["remote_dir"]) + " && {\n" + command + "\n}"
        try:
            result, host_key = asyncio.run(
                _connect_and_run(
                    conn, command, stdin, _timeout(props), float(props.get("connect_timeout_seconds") or 60.0)
                )
            )
        except NodeUnreachable as exc:
            raise StepFailed(f"node {node}: {step}: node not reachable: {exc}") from None
        except (HostKeyMismatch, AuthenticationRefused) as exc:
            raise StepFailed(f"node {node}: {step}: {exc}") from None
        if result.exit_status != 0:
            raise StepFailed(
                f"node {node}: {step} failed (exit {result.exit_status}): "
                f"{failure_cause(result.output_tail)}\n--- output tail ---\n"
                f"{visible_tail(result.output_tail, 2000)}"
            )
        outs = {k: v for k, v in props.items() if k != "__provider"}
        outs.update(
            {
                "result": parse_result(result.output_tail),
                "output_tail": visible_tail(result.output_tail),
                "exit_status": result.exit_status,
                "ok": True,
                "error": None,
                "skipped": False,
                "host_key": host_key,
            }
        )
        return outs


async def _connect_and_run(
    conn: Connection, command: str, stdin: bytes | None, timeout: float, connect_timeout: float
) -> tuple[RemoteResult, str | None]:
    """The command's result and the host key the node presented (pinned, or seen for the first time)."""
    ssh = await connect(conn, connect_timeout)
    async with ssh:
        return await run_on(ssh, command, stdin=stdin, timeout=timeout), server_host_key(ssh)


def _address(props: dict[str, Any]) -> tuple[Any, Any]:
    conn = props.get("connection")
    if not isinstance(conn, dict) or is_unknown(conn):
        return ("unknown", "unknown")
    return conn.get("host"), conn.get("port")


def _timeout(props: dict[str, Any]) -> float:
    value = props.get("timeout_seconds")
    return float(value) if isinstance(value, (int, float)) and value > 0 else 600.0


class NodeStep(Resource, module="fleet", name="NodeStep"):
    """A script run on one node. Type token `pulumi-python:dynamic/fleet:NodeStep`."""

    result: pulumi.Output[dict[str, Any]]
    output_tail: pulumi.Output[str]
    ok: pulumi.Output[bool]
    error: pulumi.Output[str | None]
    skipped: pulumi.Output[bool]
    host_key: pulumi.Output[str | None]  # the node's SSH host key as this step saw it (the ready gate's is pinned)

    def __init__(
        self,
        resource_name: str,
        *,
        node: str,
        step: str,
        connection: pulumi.Input[dict[str, Any]],
        create: pulumi.Input[str],
        update: pulumi.Input[str] | None = None,
        delete: pulumi.Input[str] | None = None,
        read: pulumi.Input[str] | None = None,
        environment: pulumi.Input[dict[str, Any]] | None = None,
        upload: dict[str, str] | None = None,
        triggers: pulumi.Input[list[Any]] | None = None,
        requires: list[Any] | None = None,
        timeout_seconds: float = 600.0,
        connect_timeout_seconds: float = 60.0,
        describes: dict[str, Any] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        # `describes`: what the step applies, in plain form, so that `pulumi preview --diff` shows which key changed
        # (the scripts themselves get it encoded, e.g. TRAIN_CONFIG_B64); it does not drive the step.
        props = {
            "node": node,
            "step": step,
            "connection": connection,
            "create": create,
            "update": update,
            "delete": delete,
            "read": read,
            "environment": environment or {},
            "upload": upload,
            "triggers": triggers or [],
            "requires": requires or [],
            "timeout_seconds": timeout_seconds,
            "connect_timeout_seconds": connect_timeout_seconds,
            "describes": describes or {},
            "result": None,
            "output_tail": None,
            "exit_status": None,
            "ok": None,
            "error": None,
            "skipped": None,
            "host_key": None,
        }
        super().__init__(NodeStepProvider(), resource_name, props, opts)
        self.error.apply(lambda error: _report(error, self.skipped))


def _report(error: str | None, skipped: pulumi.Output[bool]) -> None:
    """Fail the update (non-zero exit, for pipelines too) once the failed step is recorded in state."""
    if error:
        note = "\n(the next `pulumi up` runs this step again)"
        skipped.apply(lambda s: None if s else _fail(error + note))


def _fail(message: str) -> None:
    raise pulumi.RunError(message)

"""Where the CLI's verbs find the project: its stacks' config, the environment the engine runs with, the local
emulator, the Automation API stack, its outputs and a Lambda API client for the stack's account."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

from lambda_provider.client import LambdaClient
from lambda_provider.resources.settings import settings_from

DEV_PASSPHRASE = "dev-stack-emulator-only"  # the emulator stacks' non-secret passphrase (README "State and secrets")
ROOT_ENV = "LAMBDA_SAE_ROOT"  # another project directory (the tests run throwaway copies)


class WorkspaceError(Exception):
    """A problem the user fixes; the message names it and the fix."""


def repo_root() -> Path:
    override = os.environ.get(ROOT_ENV)
    return Path(override).resolve() if override else Path(__file__).resolve().parents[2]


def project_name() -> str:
    path = repo_root() / "Pulumi.yaml"
    try:
        return str((yaml.safe_load(path.read_text()) or {})["name"])
    except (OSError, KeyError, TypeError) as exc:
        raise WorkspaceError(f"cannot read the project name from {path}: {exc}") from None


def stack_file(name: str) -> Path:
    return repo_root() / f"Pulumi.{name}.yaml"


def stack_config(name: str) -> dict[str, Any]:
    """The `config:` mapping of Pulumi.<name>.yaml (secure values stay {"secure": ...})."""
    path = stack_file(name)
    if not path.is_file():
        raise WorkspaceError(
            f"stack {name!r} has no {path.name} in {repo_root()}: copy one of stacks/Pulumi.*.yaml "
            f"there as {path.name} (or pass --stack dev)"
        )
    config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    if not isinstance(config, dict):
        raise WorkspaceError(f"{path}: `config:` must be a mapping")
    return config


def target(name: str) -> str:
    return str(stack_config(name).get(f"{project_name()}:target", ""))


def is_emulator(name: str) -> bool:
    return target(name) == "emulator"


def toolchain_path() -> str:
    """PATH with the pinned toolchain (`make setup` writes .toolchain) and the venv's bin in front."""
    parts = []
    toolchain = repo_root() / ".toolchain"
    if toolchain.is_file():
        parts.append(toolchain.read_text().strip())
    parts.append(str(Path(sys.executable).parent))
    parts.append(os.environ.get("PATH", ""))
    return os.pathsep.join(p for p in parts if p)


def emulator_dir() -> Path:
    return Path(os.environ.get("EMULATOR_DIR") or repo_root() / ".emulator")


def emulator_env() -> dict[str, str]:
    """LAMBDA_API_URL/LAMBDA_API_KEY/LAMBDA_EMULATOR_CONTROL_URL of the running emulator ({} when never started)."""
    path = emulator_dir() / "emulator.env"
    if not path.is_file():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().split() if "=" in line)


def _emulator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lambda_provider.emulator", "--data-dir", str(emulator_dir()), *args],
        cwd=repo_root(),
        capture_output=True,
        text=True,
        check=False,
    )


def emulator_running() -> bool:
    return _emulator("--status").returncode == 0


def ensure_emulator(name: str) -> dict[str, str]:
    """Start the local emulator in the background when the stack targets it and it is not running; its env."""
    if not is_emulator(name):
        return {}
    if not emulator_running():
        print(f"starting the Lambda Cloud emulator in the background (data in {emulator_dir()})", file=sys.stderr)
        started = _emulator(
            "--background",
            "--port",
            os.environ.get("EMULATOR_PORT", "8790"),
            "--time-scale",
            os.environ.get("EMULATOR_TIME_SCALE", "0.05"),
        )
        if started.returncode != 0:
            raise WorkspaceError(
                f"the emulator did not start:\n{started.stdout}{started.stderr}\n"
                f"see `python -m lambda_provider.emulator --status --data-dir {emulator_dir()}`"
            )
    return emulator_env()


def stop_emulator() -> str:
    stopped = _emulator("--stop")
    return (stopped.stdout or stopped.stderr).strip()


def backend_url() -> str:
    return os.environ.get("PULUMI_BACKEND_URL") or f"file://{repo_root() / '.pulumi-state'}"


def environment(name: str) -> dict[str, str]:
    """What the engine runs with for stack `name`. Refuses a non-emulator stack without its own passphrase."""
    env = {
        "PATH": toolchain_path(),
        "PULUMI_BACKEND_URL": backend_url(),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    }
    has_passphrase = bool(os.environ.get("PULUMI_CONFIG_PASSPHRASE") or os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE"))
    if is_emulator(name):
        if not has_passphrase:
            env["PULUMI_CONFIG_PASSPHRASE"] = DEV_PASSPHRASE
        emulator = emulator_env()
        for key in ("LAMBDA_API_URL", "LAMBDA_API_KEY"):
            if key in emulator:
                env[key] = emulator[key]
    elif not has_passphrase:
        raise WorkspaceError(
            f"stack {name!r} targets {target(name) or 'a real account'!r}, not the emulator, and its secrets need a "
            f"passphrase of your own: export PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) and run "
            f"the command again (the dev passphrase {DEV_PASSPHRASE!r} is for emulator stacks only)"
        )
    return env


def stack(name: str, create: bool = False) -> auto.Stack:
    """The stack `name` of the project, through a local workspace running the engine with `environment(name)`."""
    env = environment(name)
    os.environ["PATH"] = env["PATH"]  # the Automation API looks `pulumi` up on this process's PATH
    url = env["PULUMI_BACKEND_URL"]
    if url.startswith("file://"):
        Path(url[len("file://") :]).mkdir(parents=True, exist_ok=True)
    from lambda_provider.cli.engine import pulumi_command  # engine builds on this module

    opts = auto.LocalWorkspaceOptions(work_dir=str(repo_root()), env_vars=env, pulumi_command=pulumi_command())
    try:
        if create:
            return auto.create_or_select_stack(name, work_dir=str(repo_root()), opts=opts)
        return auto.select_stack(name, work_dir=str(repo_root()), opts=opts)
    except auto.errors.StackNotFoundError:
        raise WorkspaceError(f"stack {name!r} does not exist yet: run `lambda-sae up --stack {name}`") from None


def outputs(name: str) -> dict[str, Any]:
    """The stack's outputs as plain values (secrets unwrapped)."""
    return {key: value.value for key, value in stack(name).outputs().items()}


def _plain_config(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in stack_config(name).items() if not isinstance(v, dict | list)}


def api_client(name: str) -> LambdaClient:
    """A client for the stack's account: the emulator's key and URL, or lambda:apiKey / LAMBDA_API_KEY."""
    config = _plain_config(name)
    settings = settings_from(config.get)
    if is_emulator(name):
        emulator = ensure_emulator(name)
        settings = dataclasses.replace(settings, api_key=emulator["LAMBDA_API_KEY"], api_url=emulator["LAMBDA_API_URL"])
    elif not settings.api_key:
        key = _secret_config(name, "lambda:apiKey")
        if not key:
            raise WorkspaceError(
                f"no Lambda API key for stack {name!r}: `pulumi config set --secret lambda:apiKey "
                f"<key> --stack {name}` or export LAMBDA_API_KEY"
            )
        settings = dataclasses.replace(settings, api_key=key)
    return settings.client()


def _secret_config(name: str, key: str) -> str | None:
    try:
        return stack(name).get_config(key).value
    except auto.errors.CommandError:
        return None

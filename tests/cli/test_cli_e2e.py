"""`lambda-sae` end to end on the emulator, in order on one stack (each `up` costs tens of seconds): a non-emulator
stack without a passphrase is refused -> `up` shows the node phases and ends with the summary, a preview then
changes nothing -> a SIGKILLed `up` is followed by a plain `up` that converges -> an instance terminated out of band
makes `up` refresh first -> an untagged instance is an orphan in `instances`, the drift job and `destroy`'s report,
and `reap --yes` terminates it and nothing else."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.cli.conftest import STACK, CliProject, fleet_config
from tests.pulumi_support import REPO_ROOT

TRAINING = re.compile(r"^  node-0\s+training$", re.M)


def engines_running(root: Path) -> list[int]:
    """The project's engine and plugin processes (language host, dynamic provider host)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if b"pulumi" in (proc / "cmdline").read_bytes() and os.readlink(proc / "cwd") == str(root):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def launch_by_hand(project: CliProject, name: str) -> str:
    if not any(k["name"] == "by-hand" for k in project.api("GET", "/ssh-keys")):
        project.api("POST", "/ssh-keys", {"name": "by-hand"})
    launched = project.api(
        "POST",
        "/instance-operations/launch",
        {"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10", "ssh_key_names": ["by-hand"], "name": name},
    )
    return launched["instance_ids"][0]


def test_a_non_emulator_stack_without_a_passphrase_is_refused(project: CliProject) -> None:
    config = {**fleet_config(), "lambda-sae:target": "lambda"}
    project.configure("real", config)
    result = project.cli("up", "--stack", "real")
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert "export PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE)" in result.stderr, result.stderr[-3000:]
    assert "stack 'real'" in result.stderr, result.stderr[-3000:]
    assert list(project.root.glob(".pulumi-state/**/real.json*")) == [], "the refused real stack left state behind"
    assert not (project.root / ".emulator").exists(), "the refused real stack started an emulator"


def test_up_shows_the_node_phases_and_ends_with_the_summary(project: CliProject) -> None:
    project.configure(STACK, fleet_config())
    result = project.cli("up", "--stack", STACK)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    for phase in ("launching", "booting", "ready", "setup", "training"):
        assert re.search(rf"^  node-0\s+{phase}\b", out, re.M), out
    assert re.search(r"^  training   \w+, step \d+/(\d+|\?), .*\$\S+ spent$", out, re.M), out  # the run's progress
    assert f"Fleet '{STACK}' (emulator):" in out, out[-3000:]
    assert re.search(r"^  node-0\s+gpu_1x_a10\s+us-east-1\s+127\.\S+\s+ssh -i \S+ -p \d+ ubuntu@127\.", out, re.M), out
    assert re.search(r"cost: \$\d+\.\d\d/h now, \$\d+\.\d\d spent so far", out), out
    assert "training: finished" in out, out[-3000:]
    assert "Outputs:" not in out, out[-3000:]  # Pulumi's own block is for --verbose

    preview = project.cli("preview", "--stack", STACK)
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert re.search(r"^preview: no changes, \d+ unchanged$", preview.stdout, re.M), preview.stdout


def test_a_sigkilled_up_is_followed_by_a_plain_up_that_converges(project: CliProject) -> None:
    project.configure(STACK, fleet_config(run_name="cli-again"))
    log = project.root / "killed-up.log"
    with log.open("w") as sink:
        up = subprocess.Popen(
            project.command("up", "--stack", STACK),
            cwd=project.root,
            env=project.env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 300
        # Killed once the engine is in the training run (it launches the trainer and waits on it).
        while up.poll() is None and time.monotonic() < deadline and not TRAINING.search(log.read_text()):
            time.sleep(0.2)
        assert up.poll() is None, log.read_text()
        os.kill(up.pid, signal.SIGKILL)
        up.wait(timeout=30)
    deadline = time.monotonic() + 60
    while engines_running(project.root) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert engines_running(project.root) == [], "the engine and its plugins died with their driver"

    again = project.cli("up", "--stack", STACK)
    out = again.stdout
    assert again.returncode == 0, out[-3000:] + again.stderr[-3000:]
    assert re.search(rf"stack {STACK} was locked by an update that was killed \(pid \d+", out), out
    assert "`pulumi cancel --stack clitest`" in out, out[-3000:]
    assert "training: finished" in out, out[-3000:]
    assert len(project.live_instances()) == 1


def test_up_refreshes_first_when_the_api_reports_an_instance_gone(project: CliProject) -> None:
    victim = project.live_instances()[0]["id"]
    project.api("POST", "/instance-operations/terminate", {"instance_ids": [victim]})
    result = project.cli("up", "--stack", STACK)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "the instance of node-0 is gone at Lambda: refreshing the state first" in out, out[-3000:]
    assert re.search(r"^  node-0\s+launching", out, re.M), out
    assert "training: finished" in out, out[-3000:]
    assert [i["id"] for i in project.live_instances()] != [victim]
    assert len(project.live_instances()) == 1


def test_an_untagged_instance_is_an_orphan_and_reap_terminates_only_it(project: CliProject) -> None:
    owned = [i["id"] for i in project.live_instances()]
    orphan = launch_by_hand(project, "by-hand-1")

    listed = project.cli("instances", "--stack", STACK)
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"^  {orphan}\s+ORPHAN\s+by-hand-1\s+gpu_1x_a10\s+us-east-1", listed.stdout, re.M), listed.stdout
    assert re.search(rf"^  {owned[0]}\s+stack {STACK}\s", listed.stdout, re.M), listed.stdout
    assert f"`lambda-sae reap --stack {STACK}` terminates them" in listed.stdout, listed.stdout[-3000:]

    emulator = project.emulator_env()
    drift_env = {
        **project.env,
        "PULUMI_BACKEND_URL": f"file://{project.root / '.pulumi-state'}",
        "PULUMI_CONFIG_PASSPHRASE": "dev-stack-emulator-only",
        "LAMBDA_API_URL": emulator["LAMBDA_API_URL"],
        "LAMBDA_API_KEY": emulator["LAMBDA_API_KEY"],
        "PATH": f"{(project.root / '.toolchain').read_text().strip()}:{os.environ['PATH']}",
    }
    drift = subprocess.run(
        [
            sys.executable,
            "-m",
            "lambda_provider.gitops.drift_check",
            "--stack",
            STACK,
            "--cwd",
            str(project.root),
        ],
        env=drift_env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert drift.returncode == 1, drift.stdout + drift.stderr
    assert f"stack {STACK}: no drift" in drift.stdout, drift.stdout[-3000:]
    assert f"::error title=Orphans in the account of stack {STACK}::1 instance(s)" in drift.stdout, drift.stdout[-3000:]
    assert f"ORPHAN {orphan} by-hand-1 gpu_1x_a10" in drift.stdout, drift.stdout[-3000:]

    refused = project.cli("reap", "--stack", STACK)
    assert refused.returncode == 1, refused.stdout[-3000:] + refused.stderr[-3000:]
    assert f"run `lambda-sae reap --yes --stack {STACK}`" in refused.stderr, refused.stderr[-3000:]
    assert orphan in [i["id"] for i in project.live_instances()]

    reaped = project.cli("reap", "--yes", "--stack", STACK)
    assert reaped.returncode == 0, reaped.stderr
    assert f"terminated {orphan}" in reaped.stdout, reaped.stdout[-3000:]
    assert [i["id"] for i in project.live_instances()] == owned

    restarted = project.cli("restart", "node-0", "--stack", STACK)
    assert restarted.returncode == 0, restarted.stderr
    assert f"restarted node-0 (instance {owned[0]}, status active)" in restarted.stdout, restarted.stdout[-3000:]
    unknown = project.cli("restart", "node-7", "--stack", STACK)
    assert unknown.returncode == 1, unknown.stdout[-3000:] + unknown.stderr[-3000:]
    assert f"stack {STACK} has no node 'node-7' (its nodes: node-0)" in unknown.stderr, unknown.stderr[-3000:]

    second = launch_by_hand(project, "by-hand-2")
    destroyed = project.cli("destroy", "--stack", STACK)
    out = destroyed.stdout
    assert destroyed.returncode == 0, out[-3000:] + destroyed.stderr[-3000:]
    assert f"account check: nothing of stack {STACK} is left running" in out, out[-3000:]
    orphan_line = rf"^  {second}\s+ORPHAN\s+by-hand-2\s+gpu_1x_a10\s+us-east-1\s+\S+\s+\$\d+\.\d\d/h"
    assert re.search(orphan_line, out, re.M), out
    assert f"`lambda-sae reap --stack {STACK}` terminates them" in out, out[-3000:]
    assert re.search(r"^  \S+\s+sae-cli\s+us-east-1\s.*\$/month unknown", out, re.M), out
    assert f"`lambda-sae reap --filesystem sae-cli --stack {STACK}` deletes it" in out, out[-3000:]
    assert "emulator left running: orphans remain on it" in out, out[-3000:]
    assert [i["id"] for i in project.live_instances()] == [second]

    assert project.cli("reap", "--yes", "--stack", STACK).returncode == 0
    assert project.live_instances() == []

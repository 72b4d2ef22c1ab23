"""The fleet end to end: the real `pulumi` CLI runs the project's program against the real emulator, the steps log
in over real SSH, and the real trainer runs (two emulated nodes, torchrun over gloo on loopback).

One flow, in order, sharing one stack (each `up` costs tens of seconds): up -> no-op preview -> over-budget preview
-> setup failure and recovery -> instance-type replace resuming from the checkpoint -> trainer crash mid-run and
recovery from its checkpoint -> out-of-band terminate, refresh, unreachable replacement, repair -> destroy keeping
the filesystem.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from tests.fleet.fleet_support import A10, A100, Fleet, assert_clean_up, fleet_on_emulator, run_status, stack_config
from tests.pulumi_support import require_pulumi


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with fleet_on_emulator(tmp_path_factory.mktemp("fleet")) as fleet:
        yield fleet


def child_pids(parent: int) -> list[int]:
    """Processes whose parent is `parent` (torchrun's workers run in sessions of their own, not in its group)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == parent:
            children.append(int(stat.parent.name))
    return children


def crash_trainer_during_up(fleet: Fleet, node: str, min_step: int) -> tuple[str, int, int]:
    """Run `up`; once the engine is in the fleet's wait on the run (its progress line on stdout) and the run is past
    `min_step`, SIGKILL `node`'s trainer worker (as an OOM kill or a segfault would end it); torchrun sees it die.
    Returns (output, exit status, the run's step when killed)."""
    project = fleet.project
    output_path = project.root / "crash-up.log"
    cmd = [require_pulumi(), "up", "--yes", "--skip-preview", "--stack", project.stack, "--non-interactive"]
    pidfile, run_dir, killed_at = fleet.node_home(node) / "lambda-sae" / "train.pid", fleet.run_dir(), -1
    with output_path.open("w") as sink:
        up = subprocess.Popen(
            cmd, cwd=project.root, env={**os.environ, **project.env}, stdout=sink, stderr=subprocess.STDOUT, text=True
        )
        try:
            deadline = time.monotonic() + 300  # a guard against a hang, not a speed target
            while up.poll() is None and time.monotonic() < deadline:
                step = int(run_status(run_dir).get("step") or 0)
                waiting = re.search(r"\btraining updating", output_path.read_text())
                if waiting and step >= min_step and pidfile.is_file():
                    time.sleep(3.0)  # past the run's start-up check (which would just restart a partial world)
                    killed_at = int(run_status(run_dir).get("step") or 0)
                    workers = child_pids(int(pidfile.read_text()))
                    assert workers, "torchrun runs no worker"
                    for pid in workers:
                        os.kill(pid, signal.SIGKILL)
                    break
                time.sleep(0.1)
            code = up.wait(timeout=400)
        finally:
            if up.poll() is None:
                up.kill()
    return output_path.read_text(), code, killed_at


def test_fleet_lifecycle(fleet: Fleet) -> None:
    # 1. up: both nodes ready, set up, training finished with its metrics in the outputs, checkpoints on the fs.
    fleet.configure(stack_config([A10, A100]))
    output = fleet.up()
    assert_clean_up(output)
    outs = fleet.project.outputs()
    assert [n["type"] for n in outs["nodes"]] == ["gpu_1x_a10", "gpu_1x_a10"]
    assert all(n["ssh"].startswith("ssh -i ") for n in outs["nodes"]), [n["ssh"] for n in outs["nodes"]]
    assert all(n["ip"].startswith("127.") for n in outs["nodes"]), [n["ip"] for n in outs["nodes"]]
    assert outs["hourly_cost_usd"] == pytest.approx(2.58), outs["hourly_cost_usd"]
    assert outs["projected_cost_usd"] == pytest.approx(2.58), outs["projected_cost_usd"]
    assert outs["training"]["state"] == "finished", outs["training"]
    metrics = outs["training"]["latest_metrics"]
    assert {"step", "fvu", "l0", "dead_fraction"} <= set(metrics), f"metrics missing: {sorted(metrics)}"
    assert metrics["fvu"] < 0.9, f"FVU {metrics['fvu']} after the run"
    assert outs["training"]["summary"]["world_size"] == 2
    run_dir = fleet.run_dir()
    first_steps = outs["training"]["step"]
    assert (run_dir / "checkpoints" / "latest").is_file()
    assert (run_dir / "logs" / "node-1.log").is_file()
    expires_at = outs["expires_at"]
    # Each node's ready gate recorded the instance's real host key; the later steps connected pinning it.
    state = fleet.project.state_text()
    for inst in fleet.live_instances():
        host_key = asyncssh.read_private_key(fleet.emulator.data_dir / "instances" / inst["id"] / "ssh_host_key")
        assert " ".join(host_key.export_public_key("openssh").decode().split()[:2]) in state

    # 2. a second preview changes nothing.
    fleet.project.run("preview", "--expect-no-changes")

    # 3. over budget: preview fails with the numbers, nothing launched.
    over = stack_config([A10, A100])
    over["budget"] = {"maxUsdPerHour": 3, "maxHours": 1}
    fleet.configure(over)
    result = fleet.project.run("preview", check=False)
    assert result.returncode != 0
    assert "$3.98/h, over budget.maxUsdPerHour $3.00/h" in result.stdout + result.stderr
    assert len(fleet.live_instances()) == 2

    # 4. a setup failure names the node and the cause; the next up recovers.
    fleet.configure(stack_config([A10, A100], allowCpu=False))
    failed = fleet.project.run("up", "--yes", "--skip-preview", check=False, timeout=400)
    output = failed.stdout + failed.stderr
    # The first failed step fails the update with a non-zero exit (pipelines see it), naming its node and the cause.
    assert failed.returncode != 0, output[-3000:]
    assert re.search(r"node node-\d: setup failed", output), output[-3000:]
    assert "torch sees 0 CUDA device(s)" in output, output[-3000:]
    fleet.configure(stack_config([A10, A100]))
    assert_clean_up(fleet.up())

    # 5. instance type change: preview shows the replace; the new nodes resume from the checkpoint.
    longer = stack_config([A100], overrides={"total_vectors": 200_000})
    fleet.configure(longer)
    preview = fleet.project.run("preview", "--diff").stdout
    assert "+-" in preview, f"no replace in the preview:\n{preview[-3000:]}"
    assert "node-0" in preview, preview[-3000:]
    assert_clean_up(fleet.up())
    outs = fleet.project.outputs()
    assert [n["type"] for n in outs["nodes"]] == ["gpu_1x_a100_sxm4"] * 2
    assert outs["training"]["state"] == "finished", outs["training"]
    assert outs["training"]["step"] > first_steps, f"step {outs['training']['step']}, not past {first_steps}"
    assert f"resumed at step {first_steps}" in (run_dir / "logs" / "node-0.log").read_text()
    assert outs["expires_at"] == expires_at, "expires_at stays stable across updates"

    # 6. a trainer crash mid-run on the second node fails the update naming that node and the cause, with its log
    #    tail (every rank fails when one dies: the head reports a lost peer, node-1's torchrun the killed worker);
    #    the next up restarts the run from the checkpoint it wrote before the crash and finishes it.
    resumed_from = outs["training"]["step"]
    fleet.configure(stack_config([A100], overrides={"total_vectors": 1_500_000}))
    output, code, killed_at = crash_trainer_during_up(fleet, "node-1", min_step=resumed_from + 100)
    assert killed_at > resumed_from, f"the trainer was never caught mid-run\n{output[-3000:]}"
    assert code != 0, output[-3000:]
    assert "node node-1: a trainer worker was killed (Signal 9 (SIGKILL))" in output, output[-3000:]
    assert "--- log tail (node node-1) ---" in output, output[-3000:]
    log_before = len((run_dir / "logs" / "node-0.log").read_text())
    assert_clean_up(fleet.up())
    outs = fleet.project.outputs()
    assert outs["training"]["state"] == "finished", outs["training"]
    assert outs["training"]["step"] == 1465, outs["training"]
    restart = re.search(r"resumed at step (\d+)", (run_dir / "logs" / "node-0.log").read_text()[log_before:])
    assert restart, "no `resumed at step` line after the crash"
    assert resumed_from < int(restart.group(1)) <= killed_at + 50, (
        f"resumed at step {restart.group(1)}: not the crash's checkpoint ({resumed_from} < step <= {killed_at + 50})"
    )

    # 7. out-of-band terminate: refresh shows the drift; a replacement that never becomes reachable fails naming
    #    the node (a non-zero exit, not a hang); once it boots, the next up repairs the fleet.
    victim = next(i for i in fleet.live_instances() if i["name"].endswith("node-1"))
    fleet.emulator.api("POST", "/instance-operations/terminate", {"instance_ids": [victim["id"]]})
    refresh = fleet.project.run("refresh", "--yes", check=False).stdout
    assert "node-1" in refresh, refresh[-3000:]
    assert "deleted" in refresh or "- " in refresh, f"refresh shows no deletion:\n{refresh[-3000:]}"
    fleet.emulator.hang_new_boots("ip")
    hung = fleet.up_result()
    output = hung.stdout + hung.stderr
    assert hung.returncode != 0, output[-3000:]
    # Named by whichever sees it first: the instance (still booting past its boot timeout) or the node's ready gate.
    assert re.search(r"node-1\b.*not ready", output), output[-3000:]
    fleet.emulator.hang_new_boots(None)
    for inst in fleet.live_instances():
        fleet.emulator.hang_boot(inst["id"], None)
    assert_clean_up(fleet.up())
    assert len(fleet.live_instances()) == 2
    assert fleet.project.outputs()["training"]["state"] == "finished"
    fleet.project.run("preview", "--expect-no-changes")

    # 8. destroy: nothing left running, the filesystem kept with its checkpoints, no API key in state or logs.
    down = fleet.project.run("destroy", "--yes", timeout=300)
    assert fleet.live_instances() == []
    assert (run_dir / "checkpoints" / "latest").is_file()
    key = fleet.emulator.api_key
    assert key not in fleet.project.state_text()
    assert key not in down.stdout + down.stderr + output + refresh
    assert key not in json.dumps(fleet.project.outputs())

"""Lifecycle clock: booting (no ip) -> booting (ip) -> active -> terminating -> terminated -> gone; injected states."""

from __future__ import annotations

import asyncssh

from .conftest import CheckedApi, process_alive, ssh_run, wait_for


def test_boot_sequence_and_actions(api: CheckedApi) -> None:
    api.add_key()
    instance_id = api.launch()
    first = api.instance(instance_id)
    assert first["status"] == "booting"
    assert "ip" not in first
    assert "ssh_port" not in first
    assert first["actions"]["restart"] == {
        "available": False,
        "reason_code": "vm-has-not-launched",
        "reason_description": "The instance has not launched yet.",
    }
    with_ip = wait_for(lambda: (r := api.instance(instance_id)).get("ip") and r, message="no ip")
    assert with_ip["ip"].startswith("127.")
    assert with_ip["private_ip"].startswith("127.")
    active = api.wait_status(instance_id, "active")
    assert all(a == {"available": True} for a in active["actions"].values())
    assert active["ssh_port"] > 0
    assert active["ip"] == with_ip["ip"]

    terminating = api.terminate(instance_id)[0]
    assert terminating["status"] == "terminating"
    assert terminating["actions"]["terminate"]["reason_code"] == "vm-is-terminating"
    assert "ssh_port" not in terminating
    api.wait_status(instance_id, "terminated")
    assert api.terminate(instance_id)[0]["status"] == "terminated"  # idempotent for already-terminated ids


def test_terminated_records_disappear_after_retention(api: CheckedApi) -> None:
    api.add_key()
    instance_id = api.launch()
    api.terminate(instance_id)
    api.wait_status(instance_id, "terminated")
    # retention 300 s x time_scale: then GET is 404 and the list forgets it.
    wait_for(lambda: api("GET", f"/instances/{instance_id}").status == 404, message="record never expired")
    assert api.ok("GET", "/instances") == []


def test_in_use_key_and_filesystem_cannot_be_deleted_until_terminated(api: CheckedApi) -> None:
    api.add_key()
    key_id = api.ok("GET", "/ssh-keys")[0]["id"]
    fs = api.ok("POST", "/filesystems", {"name": "ckpt", "region": "us-east-3"})
    instance_id = api.launch(file_system_names=["ckpt"])
    assert api.ok("GET", "/file-systems")[0]["is_in_use"] is True
    assert api.error("DELETE", f"/ssh-keys/{key_id}") == (
        400,
        "global/invalid-parameters",
        "Key is currently in use, cannot delete",
    )
    api.terminate(instance_id)
    # `terminating` still counts as in use (live behaviour): clients must retry.
    assert api.error("DELETE", f"/filesystems/{fs['id']}")[:2] == (400, "filesystems/filesystem-in-use")
    api.wait_status(instance_id, "terminated")
    assert api.ok("DELETE", f"/filesystems/{fs['id']}") == {"deleted_ids": [fs["id"]]}
    assert api.ok("DELETE", f"/ssh-keys/{key_id}") == {}


def test_restart_needs_a_running_instance(api: CheckedApi) -> None:
    key = api.add_key()
    instance_id = api.launch()
    assert api.error("POST", "/instance-operations/restart", {"instance_ids": [instance_id]})[:2] == (
        409,
        "global/conflict",
    )
    record = api.wait_status(instance_id, "active")
    ssh_run(record, key, "nohup sleep 600 >/dev/null 2>&1 & echo $! > pid")
    restarted = api.ok("POST", "/instance-operations/restart", {"instance_ids": [instance_id]})
    assert restarted["restarted_instances"][0]["status"] == "active"

    def old_process_gone_and_ssh_back() -> bool:
        try:
            result = ssh_run(
                api.instance(instance_id), key, 'kill -0 "$(cat pid)" 2>/dev/null && echo alive || echo dead'
            )
        except (OSError, asyncssh.Error):
            return False
        return result.stdout.strip() == "dead"

    wait_for(old_process_gone_and_ssh_back, message="restart did not kill processes / reopen SSH")


def test_boot_that_never_finishes_then_resumes(api: CheckedApi) -> None:
    api.add_key()
    api.emu.hang_new_boots("ip")
    stuck = api.launch()
    api.emu.hang_new_boots(None)
    wait_for(lambda: api.instance(stuck).get("ip"), message="no ip")
    normal = api.launch()
    api.wait_status(normal, "active")
    assert api.instance(stuck)["status"] == "booting"  # booted far longer than its boot time, still booting
    api.emu.hang_boot(stuck, None)
    api.wait_status(stuck, "active")

    no_ip = api.launch()
    api.emu.hang_boot(no_ip, "no-ip")
    api.wait_status(api.launch(), "active")
    assert "ip" not in api.instance(no_ip)


def test_unhealthy_fails_nvidia_smi_and_preempted_stops_the_machine(api: CheckedApi) -> None:
    key = api.add_key()
    instance_id = api.launch()
    record = api.wait_status(instance_id, "active")
    assert ssh_run(record, key, "nvidia-smi -L").exit_status == 0
    assert api.emu.set_instance_status(instance_id, "unhealthy")["status"] == "unhealthy"
    assert api.instance(instance_id)["status"] == "unhealthy"
    failing = ssh_run(record, key, "nvidia-smi")
    assert failing.exit_status != 0
    assert "Unable to determine the device handle" in failing.stdout
    api.emu.set_instance_status(instance_id, "active")
    assert ssh_run(record, key, "nvidia-smi -L").exit_status == 0

    ssh_run(record, key, "nohup sleep 600 >/dev/null 2>&1 & echo $! > pid")
    pid_file = api.emu.instance_paths(instance_id)["home"] + "/pid"
    with open(pid_file) as f:
        pid = int(f.read())
    api.emu.set_instance_status(instance_id, "preempted")
    preempted = api.instance(instance_id)
    assert preempted["status"] == "preempted"
    assert "ssh_port" not in preempted
    wait_for(lambda: not process_alive(pid), message="preempted instance kept its processes")
    api.terminate(instance_id)
    api.wait_status(instance_id, "terminated")

"""How long a terminated record stays listed: the catalogue's 300 s of emulator time, or --terminated-retention
(`running_emulator(terminated_retention=...)`)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from lambda_provider.emulator.testing import EmulatorHandle, running_emulator, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
# Live timings (time_scale 1) but no terminating phase, so only the retention decides when a record goes.
QUICK_TERMINATE = {"lifecycle": {"terminate_available_seconds": 0, "terminating_seconds": 0}}
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICN+lJwsONkwrdsSnQsu1ydUkIuIg5oOC+Eslvmtt60T noname"


def _terminated_instance(emu: EmulatorHandle) -> str:
    emu.api("POST", "/ssh-keys", {"name": "k", "public_key": PUBLIC_KEY})
    body = {"region_name": "us-east-3", "instance_type_name": "gpu_1x_gh200", "ssh_key_names": ["k"]}
    instance_id = emu.api("POST", "/instance-operations/launch", body).body["data"]["instance_ids"][0]
    emu.api("POST", "/instance-operations/terminate", {"instance_ids": [instance_id]})
    return instance_id


def test_a_short_retention_forgets_the_record_after_it(tmp_path: Path) -> None:
    with running_emulator(tmp_path / "emu", time_scale=1.0, config=QUICK_TERMINATE, terminated_retention=2) as emu:
        instance_id = _terminated_instance(emu)
        started = time.monotonic()
        wait_for(lambda: emu.api("GET", f"/instances/{instance_id}").body["data"]["status"] == "terminated")
        wait_for(lambda: emu.api("GET", f"/instances/{instance_id}").status == 404, timeout=30)
        assert time.monotonic() - started >= 1.5  # listed while the retention ran (a behaviour check, not speed)


def test_zero_retention_forgets_the_record_at_once(tmp_path: Path) -> None:
    with running_emulator(tmp_path / "emu", time_scale=1.0, config=QUICK_TERMINATE, terminated_retention=0) as emu:
        instance_id = _terminated_instance(emu)
        wait_for(lambda: emu.api("GET", f"/instances/{instance_id}").status == 404, timeout=10)
        assert emu.api("GET", "/instances").body["data"] == []


def test_the_default_retention_keeps_the_record_listed(tmp_path: Path) -> None:
    with running_emulator(tmp_path / "emu", time_scale=1.0, config=QUICK_TERMINATE) as emu:
        instance_id = _terminated_instance(emu)
        wait_for(lambda: emu.api("GET", f"/instances/{instance_id}").body["data"]["status"] == "terminated")
        time.sleep(1)
        assert [i["id"] for i in emu.api("GET", "/instances").body["data"]] == [instance_id]


def test_a_negative_retention_is_refused_by_the_cli(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lambda_provider.emulator", "--data-dir", str(tmp_path), "--terminated-retention", "-1"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--terminated-retention must be >= 0" in result.stderr

"""State survives stop/start and crashes; the CLI's background mode; the README curl session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lambda_provider.emulator.testing import running_emulator

from .conftest import CheckedApi, process_alive, ssh_run, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_everything_survives_a_restart(tmp_path: Path) -> None:
    with running_emulator(tmp_path / "emu", time_scale=0.003) as emu:
        api = CheckedApi(emu)
        key = api.add_key()
        api.ok("POST", "/filesystems", {"name": "ckpt", "region": "us-east-3"})
        record = api.wait_status(api.launch(file_system_names=["ckpt"], name="trainer"), "active")
        booting = api.launch()
        emu.hang_boot(booting, "ip")
        ssh_run(record, key, 'echo 42 > "$LAMBDA_NFS_ROOT/ckpt/step"; nohup sleep 600 >/dev/null 2>&1 & echo $! > pid')
        pid = int((Path(emu.instance_paths(record["id"])["home"]) / "pid").read_text())
        api_key, url = emu.api_key, emu.base_url

        emu.restart()
        assert emu.api_key == api_key
        assert emu.base_url == url  # same key and port
        assert not process_alive(pid)  # a clean stop kills instance processes
        again = api.wait_status(record["id"], "active")
        assert again["ip"] == record["ip"]
        assert again["ssh_port"] == record["ssh_port"]
        assert again["name"] == "trainer"
        assert api.instance(booting)["status"] == "booting"
        assert ssh_run(again, key, 'cat "$LAMBDA_NFS_ROOT/ckpt/step"').stdout == "42\n"

        emu.kill()  # a crash: SQLite still has everything that was acknowledged
        emu.start(emu.port)
        assert [i["id"] for i in api.ok("GET", "/instances")] == [record["id"], booting]
        api.terminate(record["id"], booting)
        api.wait_status(record["id"], "terminated")
        with pytest.raises(OSError):
            ssh_run(again, key, "true")


def test_background_service_start_status_stop(tmp_path: Path) -> None:
    data_dir = tmp_path / "svc"
    cli = [sys.executable, "-m", "lambda_provider.emulator", "--data-dir", str(data_dir)]
    started = subprocess.run(
        [*cli, "--background", "--port", "0", "--time-scale", "0.01"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        assert started.returncode == 0, started.stderr
        lines = started.stdout.splitlines()
        assert lines[0].startswith("LAMBDA_API_URL=http://127.0.0.1:")
        assert lines[1].startswith("LAMBDA_API_KEY=")
        status = subprocess.run([*cli, "--status"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
        assert status.returncode == 0
        assert status.stdout.splitlines()[:2] == lines[:2]
        assert (data_dir / "emulator.env").read_text().splitlines()[:2] == lines[:2]
    finally:
        stopped = subprocess.run([*cli, "--stop"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0
    assert "stopped emulator" in stopped.stdout
    assert subprocess.run([*cli, "--status"], cwd=REPO_ROOT, capture_output=True, timeout=30).returncode == 1


README_SESSION = Path(__file__).with_name("readme_session.sh")


def test_readme_curl_session(tmp_path: Path) -> None:
    missing = [tool for tool in ("curl", "ssh", "jq") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"README curl session NOT checked: {', '.join(missing)} not installed")
    with running_emulator(tmp_path / "emu", time_scale=0.01) as emu:
        env = {**os.environ, "LAMBDA_API_URL": emu.base_url, "LAMBDA_API_KEY": emu.api_key}
        result = subprocess.run(
            ["bash", "-euo", "pipefail", str(README_SESSION)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        assert "booting" in out
        assert "active" in out
        assert "NVIDIA GH200 480GB" in out
        assert "aarch64" in out
        assert '"terminating"' in out
        wait_for(lambda: all(i["status"] == "terminated" for i in emu.api("GET", "/instances").body["data"]))

"""SSH endpoints: the registered key only, per-instance home, fake nvidia-smi, detached processes, SFTP, scp."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path

import asyncssh
import pytest

from .conftest import CheckedApi, process_alive, ssh_run, wait_for


@pytest.fixture
def gh200(api: CheckedApi) -> tuple[dict, asyncssh.SSHKey]:
    key = api.add_key()
    api.ok("POST", "/filesystems", {"name": "ckpt", "region": "us-east-3"})
    record = api.wait_status(api.launch(file_system_names=["ckpt"]), "active")
    return record, key


def test_only_the_registered_key_and_user_get_in(gh200: tuple[dict, asyncssh.SSHKey]) -> None:
    record, key = gh200
    assert ssh_run(record, key, "true").exit_status == 0
    with pytest.raises(asyncssh.PermissionDenied):
        ssh_run(record, asyncssh.generate_private_key("ssh-ed25519"), "true")
    with pytest.raises(asyncssh.PermissionDenied):
        ssh_run(record, key, "true", username="root")


def test_session_environment_and_nvidia_smi(gh200: tuple[dict, asyncssh.SSHKey], api: CheckedApi) -> None:
    record, key = gh200
    paths = api.emu.instance_paths(record["id"])
    result = ssh_run(
        record,
        key,
        'pwd; echo "$HOME|$LAMBDA_EMULATED_ARCH|$LAMBDA_INSTANCE_TYPE|$USER"; '
        "nvidia-smi --query-gpu=name,memory.total,count --format=csv,noheader; nvidia-smi -L; "
        "nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits; nvidia-smi",
    )
    lines = result.stdout.splitlines()
    assert result.exit_status == 0, result.stderr
    assert lines[0] == paths["home"]
    assert lines[1] == f"{paths['home']}|aarch64|gpu_1x_gh200|ubuntu"
    assert lines[2] == "NVIDIA GH200 480GB, 97871 MiB, 1"
    assert lines[3].startswith("GPU 0: NVIDIA GH200 480GB (UUID: GPU-")
    assert lines[4] == "97871"
    assert any("NVIDIA GH200 480GB" in line and "On" in line for line in lines[5:])
    bad = ssh_run(record, key, "nvidia-smi --query-gpu=bogus --format=csv")
    assert bad.exit_status == 2
    assert 'Field "bogus" is not a valid field to query.' in bad.stdout
    assert ssh_run(record, key, "exit 7").exit_status == 7
    assert ssh_run(record, key, "cat; echo done", input="piped\n").stdout == "piped\ndone\n"  # stdin, then EOF


def test_multi_gpu_x86_type(api: CheckedApi) -> None:
    key = api.add_key()
    record = api.wait_status(api.launch(instance_type="gpu_8x_h100_sxm5", region="us-south-2"), "active")
    result = ssh_run(record, key, "nvidia-smi --query-gpu=index,name --format=csv,noheader; echo $LAMBDA_EMULATED_ARCH")
    assert result.stdout.splitlines() == [f"{i}, NVIDIA H100 80GB HBM3" for i in range(8)] + ["x86_64"]


def test_filesystem_mount_outlives_the_instance(gh200: tuple[dict, asyncssh.SSHKey], api: CheckedApi) -> None:
    record, key = gh200
    write = ssh_run(
        record,
        key,
        'echo step-100 > "${LAMBDA_INSTANCE_ROOT:-}/lambda/nfs/ckpt/latest" && '
        'cat "$HOME/lambda/nfs/ckpt/latest" && echo local > "$HOME/scratch"',
    )
    assert write.stdout == "step-100\n", write.stderr
    host_dir = api.emu.instance_paths(record["id"])["filesystems"]["ckpt"]
    assert Path(os.path.join(host_dir, "latest")).read_text() == "step-100\n"
    api.terminate(record["id"])
    api.wait_status(record["id"], "terminated")
    second = api.wait_status(api.launch(file_system_names=["ckpt"]), "active")
    again = ssh_run(
        second, key, 'cat "$LAMBDA_NFS_ROOT/ckpt/latest"; ls "$HOME/scratch" 2>/dev/null || echo no-scratch'
    )
    assert again.stdout == "step-100\nno-scratch\n"


def test_detached_process_survives_disconnect_and_dies_on_terminate(
    gh200: tuple[dict, asyncssh.SSHKey], api: CheckedApi
) -> None:
    record, key = gh200
    ssh_run(
        record,
        key,
        "nohup sleep 600 > trainer.log 2>&1 & echo $! > nohup.pid; "
        "setsid sleep 601 < /dev/null > /dev/null 2>&1 & echo $! > setsid.pid",
    )
    home = api.emu.instance_paths(record["id"])["home"]
    pids = [int(Path(os.path.join(home, name)).read_text()) for name in ("nohup.pid", "setsid.pid")]
    time.sleep(0.2)  # let the connection's SIGHUP land; both must still be alive after it
    assert all(process_alive(pid) for pid in pids)
    api.terminate(record["id"])
    wait_for(lambda: not any(process_alive(pid) for pid in pids), message="terminate left processes running")
    with pytest.raises(OSError):
        ssh_run(record, key, "true")


ATTACHED_COMMAND = (
    'exec python3 -c \'import os, time; open("attached.tmp", "w").write(str(os.getpid())); '
    'os.replace("attached.tmp", "attached.pid"); time.sleep(600)\''
)


def test_attached_command_gets_hangup_when_the_client_disconnects(
    gh200: tuple[dict, asyncssh.SSHKey], api: CheckedApi
) -> None:
    record, key = gh200

    async def start_and_drop() -> None:
        conn = await asyncssh.connect(
            record["ip"], port=record["ssh_port"], username="ubuntu", client_keys=[key], known_hosts=None
        )
        # The long-running process writes its own pid (whole, by rename) once it runs: closing the connection
        # earlier could hang up a shell between its handler and an `exec`, where bash loses the signal.
        await conn.create_process(ATTACHED_COMMAND)
        wait_for(pid_file.exists, message="command did not start")
        conn.close()
        await conn.wait_closed()

    pid_file = Path(api.emu.instance_paths(record["id"])["home"]) / "attached.pid"
    asyncio.run(start_and_drop())
    pid = int(pid_file.read_text())
    wait_for(lambda: not process_alive(pid), message="attached command survived the disconnect")


def test_sftp_uses_instance_paths(gh200: tuple[dict, asyncssh.SSHKey], api: CheckedApi) -> None:
    record, key = gh200

    async def transfer() -> tuple[bytes, list[str]]:
        async with (
            asyncssh.connect(
                record["ip"], port=record["ssh_port"], username="ubuntu", client_keys=[key], known_hosts=None
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            async with sftp.open("/home/ubuntu/config.yaml", "wb") as f:
                await f.write(b"lr: 0.001\n")
            async with sftp.open("/lambda/nfs/ckpt/from-sftp", "wb") as f:
                await f.write(b"ok")
            async with sftp.open("config.yaml", "rb") as f:
                data = await f.read()
            return data, sorted(await sftp.listdir("/lambda/nfs/ckpt"))

    data, listing = asyncio.run(transfer())
    assert data == b"lr: 0.001\n"
    assert "from-sftp" in listing
    paths = api.emu.instance_paths(record["id"])
    assert Path(os.path.join(paths["home"], "config.yaml")).read_text() == "lr: 0.001\n"
    assert Path(os.path.join(paths["filesystems"]["ckpt"], "from-sftp")).read_text() == "ok"


def _openssh_options(key: asyncssh.SSHKey, tmp_path: Path) -> list[str]:
    key_path = tmp_path / "id_ed25519"
    key.write_private_key(str(key_path))
    key_path.chmod(0o600)
    return [
        "-i",
        str(key_path),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
    ]


@pytest.mark.skipif(shutil.which("scp") is None, reason="OpenSSH's scp is not installed")
@pytest.mark.parametrize("protocol", [[], ["-O"]], ids=["sftp", "legacy-scp"])
def test_scp_exits_0_both_ways(
    gh200: tuple[dict, asyncssh.SSHKey], api: CheckedApi, tmp_path: Path, protocol: list[str]
) -> None:
    record, key = gh200
    scp = ["scp", *protocol, *_openssh_options(key, tmp_path), "-P", str(record["ssh_port"])]
    (tmp_path / "up.txt").write_text("up\n")
    upload = subprocess.run(
        [*scp, str(tmp_path / "up.txt"), f"ubuntu@{record['ip']}:/lambda/nfs/ckpt/up.txt"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    download = subprocess.run(
        [*scp, f"ubuntu@{record['ip']}:/lambda/nfs/ckpt/up.txt", str(tmp_path / "down.txt")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert upload.returncode == 0, upload.stderr
    assert download.returncode == 0, download.stderr
    assert (tmp_path / "down.txt").read_text() == "up\n"


@pytest.mark.skipif(shutil.which("sftp") is None, reason="OpenSSH's sftp is not installed")
def test_sftp_batch_exits_0(gh200: tuple[dict, asyncssh.SSHKey], tmp_path: Path) -> None:
    record, key = gh200
    (tmp_path / "batch").write_text(f"put {tmp_path / 'batch'} copied\nget copied {tmp_path / 'back'}\n")
    done = subprocess.run(
        [
            "sftp",
            *_openssh_options(key, tmp_path),
            "-P",
            str(record["ssh_port"]),
            "-b",
            str(tmp_path / "batch"),
            f"ubuntu@{record['ip']}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "back").read_text() == (tmp_path / "batch").read_text()

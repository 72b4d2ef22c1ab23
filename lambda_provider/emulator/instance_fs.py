"""On-disk layout of emulated instances and filesystems under the data dir.

  <data>/filesystems/<fs_id>/                      a filesystem's contents; outlives every instance
  <data>/instances/<id>/root/                      the instance's "/" ($LAMBDA_INSTANCE_ROOT in SSH sessions)
  <data>/instances/<id>/root/home/ubuntu/          $HOME; commands start here
  <data>/instances/<id>/root/lambda/nfs/<name>     -> the filesystem dir (the live mount point /lambda/nfs/<name>)
  <data>/instances/<id>/root/<custom mount point>  -> the filesystem dir (file_system_mounts at launch)
  $HOME/lambda                                     -> ../../lambda, so $HOME/lambda/nfs/<name> works too
  <data>/instances/<id>/bin/nvidia-smi             fake nvidia-smi, first on PATH
  <data>/instances/<id>/gpu_state                  "error" makes nvidia-smi fail (status unhealthy)
  <data>/instances/<id>/ssh_host_key               per-instance host key, stable across emulator restarts

API records keep the live mount point `/lambda/nfs/<name>`; inside an instance that path is
`${LAMBDA_INSTANCE_ROOT}/lambda/nfs/<name>`, and `${LAMBDA_INSTANCE_ROOT:-}/lambda/nfs/<name>` works on a real
instance too (the variable is unset there).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from .catalog import InstanceTypeSpec
from .nvidia_smi import write_nvidia_smi


class InstanceLayout:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def filesystem_dir(self, fs_id: str) -> Path:
        return self.data_dir / "filesystems" / fs_id

    def instance_dir(self, instance_id: str) -> Path:
        return self.data_dir / "instances" / instance_id

    def root(self, instance_id: str) -> Path:
        return self.instance_dir(instance_id) / "root"

    def home(self, instance_id: str) -> Path:
        return self.root(instance_id) / "home" / "ubuntu"

    def bin_dir(self, instance_id: str) -> Path:
        return self.instance_dir(instance_id) / "bin"

    def gpu_state_file(self, instance_id: str) -> Path:
        return self.instance_dir(instance_id) / "gpu_state"

    def host_key_file(self, instance_id: str) -> Path:
        return self.instance_dir(instance_id) / "ssh_host_key"

    def create_filesystem(self, fs_id: str) -> None:
        self.filesystem_dir(fs_id).mkdir(parents=True, exist_ok=True)

    def delete_filesystem(self, fs_id: str) -> None:
        shutil.rmtree(self.filesystem_dir(fs_id), ignore_errors=True)

    def filesystem_bytes_used(self, fs_id: str) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.filesystem_dir(fs_id)):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, name)).st_size
        return total

    def prepare_instance(self, doc: dict[str, Any], spec: InstanceTypeSpec) -> None:
        """Create (idempotently) the instance's root, home, mounts and tools."""
        instance_id = doc["id"]
        root, home, bin_dir = self.root(instance_id), self.home(instance_id), self.bin_dir(instance_id)
        home.mkdir(parents=True, exist_ok=True)
        bin_dir.mkdir(parents=True, exist_ok=True)
        for mount in doc["mounts"]:
            self.create_filesystem(mount["file_system_id"])
            link = root / mount["mount_point"].lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink() and not link.exists():
                link.symlink_to(self.filesystem_dir(mount["file_system_id"]), target_is_directory=True)
        (root / "lambda" / "nfs").mkdir(parents=True, exist_ok=True)
        home_lambda = home / "lambda"
        if not home_lambda.is_symlink() and not home_lambda.exists():
            home_lambda.symlink_to(Path("..") / ".." / "lambda", target_is_directory=True)
        write_nvidia_smi(bin_dir, spec, instance_id, self.gpu_state_file(instance_id))

    def set_gpu_healthy(self, instance_id: str, healthy: bool) -> None:
        state = self.gpu_state_file(instance_id)
        if healthy:
            state.unlink(missing_ok=True)
        elif state.parent.exists():
            state.write_text("error\n")

    def wipe_instance_disk(self, instance_id: str) -> None:
        """Terminate erases the local disk (the filesystems behind the symlinks stay)."""
        shutil.rmtree(self.root(instance_id), ignore_errors=True)
        shutil.rmtree(self.bin_dir(instance_id), ignore_errors=True)

    def delete_instance(self, instance_id: str) -> None:
        shutil.rmtree(self.instance_dir(instance_id), ignore_errors=True)

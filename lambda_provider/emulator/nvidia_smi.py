"""A fake `nvidia-smi` for emulated instances: answers like the emulated GPU type (name, count, memory).

Supported: `nvidia-smi` (the usual table), `nvidia-smi -L`,
`nvidia-smi --query-gpu=F1,F2,... --format=csv[,noheader][,nounits]`
(also `-i/--id N`). When the instance's GPU state file says `error` (the control API sets it with status
`unhealthy`), every call fails the way a GPU that fell off the bus does, so health checks have a real failure to see.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .catalog import InstanceTypeSpec

DRIVER_VERSION = "570.148.08"
CUDA_VERSION = "12.8"
_COMPUTE_CAPABILITY = {
    "GH200": "9.0",
    "H100": "9.0",
    "B200": "10.0",
    "A100": "8.0",
    "A10": "8.6",
    "A6000": "8.6",
    "V100": "7.0",
    "RTX 6000": "7.5",
}

_SCRIPT = r"""
import os, sys
CONFIG = __CONFIG__
FIELDS = {
    "name": ("", lambda g: g["model"]), "gpu_name": ("", lambda g: g["model"]),
    "count": ("", lambda g: str(CONFIG["count"])), "index": ("", lambda g: str(g["index"])),
    "uuid": ("", lambda g: g["uuid"]), "gpu_uuid": ("", lambda g: g["uuid"]),
    "serial": ("", lambda g: g["serial"]), "pci.bus_id": ("", lambda g: g["bus_id"]),
    "driver_version": ("", lambda g: CONFIG["driver"]), "compute_cap": ("", lambda g: CONFIG["compute_cap"]),
    "memory.total": ("MiB", lambda g: str(g["memory_mib"])), "memory.used": ("MiB", lambda g: "0"),
    "memory.free": ("MiB", lambda g: str(g["memory_mib"])), "temperature.gpu": ("", lambda g: "31"),
    "utilization.gpu": ("%", lambda g: "0"), "utilization.memory": ("%", lambda g: "0"),
    "power.draw": ("W", lambda g: "72.51"), "power.limit": ("W", lambda g: "700.00"),
    "persistence_mode": ("", lambda g: "Enabled"), "pstate": ("", lambda g: "P0"),
}

def gpus():
    return [dict(model=CONFIG["model"], memory_mib=CONFIG["memory_mib"], index=i,
                 uuid="GPU-%s-%04d" % (CONFIG["instance_id"][:8], i), serial="132%010d" % i,
                 bus_id="00000000:%02X:00.0" % (0x19 + i)) for i in range(CONFIG["count"])]

def healthy():
    try:
        with open(CONFIG["state_file"]) as f:
            return f.read().strip() != "error"
    except OSError:
        return True

def main(argv):
    if not healthy():
        print("Unable to determine the device handle for GPU0000:19:00.0: Unknown Error")
        return 255
    selected = gpus()
    query, fmt, listing, i = None, "", False, 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-L", "--list-gpus"):
            listing = True
        elif arg.startswith("--query-gpu="):
            query = arg.split("=", 1)[1]
        elif arg == "--query-gpu" and i + 1 < len(argv):
            i += 1; query = argv[i]
        elif arg.startswith("--format="):
            fmt = arg.split("=", 1)[1]
        elif arg == "--format" and i + 1 < len(argv):
            i += 1; fmt = argv[i]
        elif arg in ("-i", "--id") and i + 1 < len(argv):
            i += 1; wanted = {int(x) for x in argv[i].split(",")}
            selected = [g for g in selected if g["index"] in wanted]
        elif arg.startswith("--id="):
            wanted = {int(x) for x in arg.split("=", 1)[1].split(",")}
            selected = [g for g in selected if g["index"] in wanted]
        elif arg in ("-h", "--help"):
            print("NVIDIA System Management Interface -- emulated (lambda_provider.emulator)"); return 0
        else:
            print('Invalid combination of input arguments. Please run "nvidia-smi -h" for help.'); return 2
        i += 1
    if listing:
        for g in selected:
            print("GPU %d: %s (UUID: %s)" % (g["index"], g["model"], g["uuid"]))
        return 0
    if query is not None:
        names = [n.strip() for n in query.split(",") if n.strip()]
        for n in names:
            if n not in FIELDS:
                print('Field "%s" is not a valid field to query.' % n); return 2
        opts = {o.strip() for o in fmt.split(",")}
        if "csv" not in opts:
            print('"--format" must contain "csv".'); return 2
        if "noheader" not in opts:
            print(", ".join(n + (" [%s]" % FIELDS[n][0] if FIELDS[n][0] else "") for n in names))
        for g in selected:
            cells = []
            for n in names:
                unit, get = FIELDS[n]
                v = get(g)
                cells.append(v if (not unit or "nounits" in opts) else "%s %s" % (v, unit))
            print(", ".join(cells))
        return 0
    print(table(selected))
    return 0

def table(selected):
    bar = "+-----------------------------------------------------------------------------------------+"
    lines = ["Mon Jan  1 00:00:00 2026", bar,
             "| NVIDIA-SMI %-25s Driver Version: %-14s CUDA Version: %-8s|"
             % (CONFIG["driver"], CONFIG["driver"], CONFIG["cuda"]),
             "|-----------------------------------------+------------------------+----------------------+",
             "| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |",
             "| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |",
             "|=========================================+========================+======================|"]
    for g in selected:
        lines.append("| %3d  %-24.24s        On |   %-16s Off |                    0 |"
                     % (g["index"], g["model"], g["bus_id"]))
        lines.append("| N/A   31C    P0             72W /  700W | %9s / %9s |      0%%      Default |"
                     % ("0MiB", "%dMiB" % g["memory_mib"]))
        lines.append("+-----------------------------------------+------------------------+----------------------+")
    lines += ["", bar, "| Processes:                                                                              |",
              "|  GPU   GI   CI              PID   Type   Process name                            GPU Memory |",
              "|=========================================================================================|",
              "|  No running processes found                                                             |", bar]
    return "\n".join(lines)

sys.exit(main(sys.argv[1:]))
"""


def write_nvidia_smi(bin_dir: Path, spec: InstanceTypeSpec, instance_id: str, state_file: Path) -> Path | None:
    """Write `bin_dir/nvidia-smi` for a GPU type; CPU-only types get none (command not found, as on the real box)."""
    if spec.gpu is None or spec.gpus == 0:
        return None
    compute_cap = next((cc for key, cc in _COMPUTE_CAPABILITY.items() if key in spec.description), "9.0")
    config = {
        "model": spec.gpu.model,
        "memory_mib": spec.gpu.memory_mib,
        "count": spec.gpus,
        "instance_id": instance_id,
        "driver": DRIVER_VERSION,
        "cuda": CUDA_VERSION,
        "compute_cap": compute_cap,
        "state_file": str(state_file),
    }
    path = bin_dir / "nvidia-smi"
    # `-I` keeps the user's PYTHON* variables out of the fake tool; the emulator's own interpreter is always there.
    script = f"#!{sys.executable} -I\n" + _SCRIPT.replace("__CONFIG__", json.dumps(config))
    path.write_text(script)
    path.chmod(0o755)
    return path

#!/usr/bin/env bash
# Idempotent, architecture-aware node setup (run by the fleet's setup step from $FLEET_HOME/training).
#
#   * Real Lambda images: use the Lambda Stack PyTorch of the system python3 (arm64 on GH200, x86_64 elsewhere).
#     Only if that python has no torch, make a venv (--system-site-packages) and install torch built for THIS
#     machine's architecture: aarch64 from the PyTorch CUDA index (PyPI's aarch64 wheels were CPU-only before 2.11),
#     x86_64 from PyPI. Never a wheel for another architecture.
#   * The emulator (LAMBDA_EMULATOR=1): python3 is the emulator's interpreter; CPU only, allowed when
#     FLEET_ALLOW_CPU=1.
#   * Small pure-Python deps the trainer needs (PyYAML, safetensors, numpy) are installed only when missing.
#   * A marker keyed by this script's and the trainer's digest makes a second run a few-second no-op check.
#
# Env: FLEET_HOME (default ~/lambda-sae), FLEET_EXPECT_GPUS (GPUs torch must see), FLEET_ALLOW_CPU (0/1).
# Prints `@fleet key=value` lines (python, torch, device, arch) for the fleet outputs; FLEET-ERROR: on failure.
set -euo pipefail
FLEET_HOME="${FLEET_HOME:-$HOME/lambda-sae}"
EXPECT_GPUS="${FLEET_EXPECT_GPUS:-1}"
ALLOW_CPU="${FLEET_ALLOW_CPU:-0}"
ARCH="${LAMBDA_EMULATED_ARCH:-$(uname -m)}"
mkdir -p "$FLEET_HOME/logs"
fail() { echo "FLEET-ERROR: $*"; exit 1; }

digest="$(cat "$FLEET_HOME/training/setup_node.sh" "$FLEET_HOME"/training/*.py 2>/dev/null | sha256sum | cut -c1-16)"
marker="$FLEET_HOME/.setup-done-$digest"

pick_python() {
  if [ -x "$FLEET_HOME/venv/bin/python" ]; then echo "$FLEET_HOME/venv/bin/python"; else command -v python3; fi
}

if [ -f "$marker" ] && [ -x "$(cat "$marker")" ]; then
  PY="$(cat "$marker")"
  echo "@fleet setup=cached"
else
  PY="$(pick_python)" || fail "no python3 on the node"
  if ! "$PY" -c "import torch" 2>/dev/null; then
    [ "${LAMBDA_EMULATOR:-0}" = 1 ] && fail "the emulator's python has no torch; run make setup"
    echo "no torch in $PY: creating $FLEET_HOME/venv for $ARCH"
    python3 -m venv --system-site-packages "$FLEET_HOME/venv" || fail "python3 -m venv failed (apt install python3-venv)"
    PY="$FLEET_HOME/venv/bin/python"
    case "$ARCH" in
      aarch64|arm64) "$PY" -m pip install --quiet torch --index-url https://download.pytorch.org/whl/cu128 \
                       || fail "installing aarch64 CUDA torch failed" ;;
      x86_64) "$PY" -m pip install --quiet torch || fail "installing x86_64 torch failed" ;;
      *) fail "unsupported CPU architecture $ARCH" ;;
    esac
  fi
  missing="$("$PY" - <<'PYEOF'
import importlib.util
print(" ".join(p for m, p in [("yaml", "PyYAML"), ("safetensors", "safetensors"), ("numpy", "numpy")]
               if importlib.util.find_spec(m) is None))
PYEOF
)"
  if [ -n "$missing" ]; then
    [ "${LAMBDA_EMULATOR:-0}" = 1 ] && fail "the emulator's python lacks $missing; run make setup"
    if [ ! -x "$FLEET_HOME/venv/bin/python" ]; then
      python3 -m venv --system-site-packages "$FLEET_HOME/venv" || fail "python3 -m venv failed"
      PY="$FLEET_HOME/venv/bin/python"
    fi
    # shellcheck disable=SC2086
    "$PY" -m pip install --quiet $missing || fail "pip install $missing failed"
  fi
  rm -f "$FLEET_HOME"/.setup-done-*
  echo "$PY" > "$marker"
fi

# Verify, every time (cheap): torch imports, is built for this machine, and sees the GPUs (or CPU where allowed).
check="$("$PY" - "$EXPECT_GPUS" <<'PYEOF'
import platform, sys
import torch
expected = int(sys.argv[1])
count = torch.cuda.device_count() if torch.cuda.is_available() else 0
print(f"@fleet torch={torch.__version__}")
print(f"@fleet torch_machine={platform.machine()}")
print(f"@fleet cuda_devices={count}")
PYEOF
)" || fail "torch does not import in $PY"
echo "$check"
cuda_devices="$(echo "$check" | sed -n 's/^@fleet cuda_devices=//p')"
if [ "$cuda_devices" -lt "$EXPECT_GPUS" ]; then
  if [ "${LAMBDA_EMULATOR:-0}" = 1 ] && [ "$ALLOW_CPU" = 1 ]; then
    echo "@fleet device=cpu"
  else
    fail "torch sees $cuda_devices CUDA device(s), the instance type has $EXPECT_GPUS"
  fi
else
  echo "@fleet device=cuda"
fi
echo "$PY" > "$FLEET_HOME/python"
echo "@fleet python=$PY"
echo "@fleet arch=$ARCH"
